"""The triton runner's failure path against a real gRPC client and a port nobody listens on (no server needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakewatch.runtime.backends.base import BackendUnavailable

from .triton_server import free_ports


def test_dead_server_loses_batches_backs_off_and_records_the_outage(tiny_spec):
    grpc = pytest.importorskip("tritonclient.grpc")
    from fakewatch.runtime.backends.triton_runner import TritonRunner

    port = free_ports(1)[0]
    r = TritonRunner(Path(f"m@127.0.0.1:{port}"), tiny_spec, url=f"grpc://127.0.0.1:{port}", model="m",
                     timeout_s=2.0, backoff_s=(30.0, 60.0))
    r._grpc = grpc                       # what activate() sets up; activate() itself would refuse: nothing is there
    r._client, r.is_active = r._new_client(), True
    x = np.zeros((2, 3, *tiny_spec.input_size), np.float32)
    with pytest.raises(BackendUnavailable, match="failed a request.*retrying"):
        r.infer(x)
    # inside the backoff window no request is sent: the batch fails at once, counted against the same outage
    with pytest.raises(BackendUnavailable, match=r"unreachable; retrying in \d"):
        r.infer(x)
    assert len(r.outages) == 1 and r.outages[0].up_at is None and r.outages[0].batches_lost == 2
    assert "UNAVAILABLE" in r.outages[0].error
    r.deactivate()                       # statistics cannot be read from a dead server: the run still ends
    assert r.server_timing == {} and not r.is_active
