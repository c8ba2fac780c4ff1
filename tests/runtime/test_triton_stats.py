"""Server-side timing from Triton's statistics: parsing, interval means, restarts, the sampler thread, and how the
latency tracker and the metrics sink account the server stages (the real server: tests/runtime/test_triton_server.py).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from fakewatch.runtime.backends.triton_stats import ServerTimingSampler, StatsSnapshot, interval_means
from fakewatch.runtime.latency import LatencyTracker, format_summary


def _stats(name: str, requests: int, execs: int, queue_ns: int, infer_ns: int) -> dict:
    """The shape of get_inference_statistics(as_json=True): protobuf JSON, so int64 values are strings and zero
    fields are left out."""
    inf = {"success": {"count": str(requests), "ns": str(requests * 10)},
           "queue": {"count": str(requests), "ns": str(queue_ns)},
           "compute_input": {"count": str(requests), "ns": str(requests * 1000)},
           "compute_infer": {"count": str(requests), "ns": str(infer_ns)},
           "compute_output": {"count": str(requests), "ns": str(requests * 500)}}
    if not requests:
        inf = {}
    return {"model_stats": [{"name": name, "version": "1", "execution_count": str(execs),
                             "inference_count": str(requests), "inference_stats": inf}]}


def test_snapshot_and_interval_means():
    a = StatsSnapshot.from_json(_stats("m", 10, 4, 20_000_000, 30_000_000), "m")
    assert (a.requests, a.executions, a.queue_ns, a.compute_count) == (10, 4, 20_000_000, 10)
    assert a.compute_ns == 30_000_000 + 10 * 1500
    b = StatsSnapshot.from_json(_stats("m", 30, 9, 80_000_000, 70_000_000), "m")
    means = interval_means(a, b)
    assert means["server_queue"] == pytest.approx(60e6 / 20 / 1e6)            # 3 ms per request
    assert means["server_compute"] == pytest.approx((40e6 + 20 * 1500) / 20 / 1e6)
    assert means["requests"] == 20 and means["executions"] == 5
    assert interval_means(b, b) is None                                        # nothing ran in between
    restarted = StatsSnapshot.from_json(_stats("m", 2, 1, 1_000, 2_000), "m")
    assert interval_means(b, restarted) is None                                # counters went back to 0
    empty = StatsSnapshot.from_json(_stats("m", 0, 0, 0, 0), "m")
    assert empty.requests == 0 and empty.compute_ns == 0
    with pytest.raises(ValueError, match=r"no entry for model 'x' \(they list \['m'\]\)"):
        StatsSnapshot.from_json(_stats("m", 1, 1, 1, 1), "x")


def test_sampler_keeps_last_interval_and_survives_a_restart():
    seq = [_stats("m", 10, 10, 10_000_000, 10_000_000), _stats("m", 20, 15, 30_000_000, 20_000_000),
           RuntimeError("UNAVAILABLE"), _stats("m", 4, 4, 8_000_000, 4_000_000),
           _stats("m", 8, 6, 12_000_000, 8_000_000)]

    def fetch():
        item = seq.pop(0)
        if isinstance(item, Exception):
            raise item
        return StatsSnapshot.from_json(item, "m")

    s = ServerTimingSampler(fetch, interval_s=0.01)
    assert s.sample() is None and s.latest == {}                 # one sample: no interval yet
    assert s.sample()["server_queue"] == pytest.approx(2.0)
    assert s.sample() is None and s.failures == 1                 # server down: no new figure, the old one stays
    assert s.latest["server_queue"] == pytest.approx(2.0)
    assert s.sample() is None                                     # first sample after the restart: new baseline
    assert s.sample()["server_queue"] == pytest.approx(1.0) and s.latest["requests"] == 4
    with pytest.raises(ValueError):
        ServerTimingSampler(fetch, interval_s=0)


def test_sampler_thread_samples_only_after_batches():
    calls = []
    done = threading.Event()

    def fetch():
        calls.append(1)
        if len(calls) >= 2:
            done.set()
        n = 5 * len(calls)
        return StatsSnapshot.from_json(_stats("m", n, n, n * 1_000_000, n * 2_000_000), "m")

    s = ServerTimingSampler(fetch, interval_s=0.01).start()
    try:
        assert not done.wait(0.3) and calls == []                  # idle: no statistics requests at all
        for _ in range(200):
            s.batch_done()
            if done.wait(0.02):
                break
        assert done.is_set()
    finally:
        s.stop()
    assert s._thread is None
    assert s.latest["server_queue"] == pytest.approx(1.0) and s.latest["server_compute"] == pytest.approx(2.0015)


def test_latency_tracker_keeps_server_stages_out_of_total():
    t = LatencyTracker()
    stamps = {"capture": 1.0, "dequeue": 1.001, "batch": 1.002, "inference": 1.012, "decision": 1.013}
    d = t.record("cam", 0, stamps, faces=1, server_ms={"server_queue": 3.0, "server_compute": 5.0, "junk": 1.0})
    assert d["server_queue"] == 3.0 and d["server_compute"] == 5.0 and "junk" not in d
    assert d["total"] == pytest.approx(13.0)                                  # capture -> decision only
    no_face = {"capture": 2.0, "dequeue": 2.001, "decision": 2.002}
    assert "server_queue" not in t.record("cam", 1, no_face, faces=0, server_ms={"server_queue": 3.0})
    lat = t.stream_stats("cam")["latency_ms"]
    assert lat["server_queue"]["p50"] == pytest.approx(3.0, rel=0.07) and lat["inference"]["p50"] > 9
    text = format_summary({"cam": {**t.stream_stats("cam"), "state": "REAL"}}, t.overall())
    assert "srv_queue" in text and "srv_comp" in text and "on the server (Triton statistics, per request): queue p50 3.0" in text


def test_metrics_sink_observes_server_stages():
    pytest.importorskip("prometheus_client")
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from fakewatch.runtime.metrics_output import MetricsOutput
    from fakewatch.runtime.pipeline import FrameView

    m = MetricsOutput(0, "127.0.0.1")
    stamps = {"capture": 1.0, "batch": 1.002, "inference": 1.012, "decision": 1.013}
    for seq in range(2):
        m.frame(FrameView("cam", seq, np.zeros((2, 2, 3), np.uint8), [], [0.5], "REAL", 0.1, stamps, 1.0,
                          server_ms={"server_queue": 3.0, "server_compute": 5.0}))
    s = {(x.name, tuple(sorted(x.labels.items()))): x.value
         for fam in text_string_to_metric_families(generate_latest(m.registry).decode()) for x in fam.samples}
    assert s[("fakewatch_stage_latency_seconds_count", (("stage", "server_compute"),))] == 2
    assert s[("fakewatch_stage_latency_seconds_sum", (("stage", "server_compute"),))] == pytest.approx(0.010)
    assert s[("fakewatch_stage_latency_seconds_sum", (("stage", "server_queue"),))] == pytest.approx(0.006)
