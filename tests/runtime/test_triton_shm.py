"""System shared-memory input slots for a co-located Triton server (no server needed here; the real-server tests
in test_triton_server.py send batches through them)."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("tritonclient.utils.shared_memory")

from fakewatch.runtime.backends.triton_shm import PREFIX, InputSlots, remove_stale  # noqa: E402


def test_slots_hold_batches_until_released_and_never_share_one():
    slots = InputSlots.for_batches(max_batch=4, item_bytes=3 * 8 * 8 * 4, in_flight=2, tag="t1")
    try:
        assert slots.slots == 3 and slots.slot_bytes == 4 * 3 * 8 * 8 * 4
        assert (os.path.exists(f"/dev/shm/{slots.name}"))
        xs = [np.full((4, 3, 8, 8), i, np.float32) for i in range(4)]
        offsets = [slots.put(x) for x in xs[:3]]
        assert sorted(offsets) == [0, slots.slot_bytes, 2 * slots.slot_bytes]
        assert slots.put(xs[3]) is None                        # all in flight: the caller sends gRPC bytes
        import tritonclient.utils.shared_memory as shm
        for i, off in enumerate(offsets):                      # each slot still holds its own batch
            got = shm.get_contents_as_numpy(slots._handle, np.float32, [4, 3, 8, 8], offset=off)
            assert np.array_equal(got, xs[i])
        slots.release(offsets[1])
        assert slots.put(xs[3]) == offsets[1]
        assert slots.put(np.zeros((5, 3, 8, 8), np.float32)) is None   # bigger than a slot
    finally:
        slots.close()
    assert not os.path.exists(f"/dev/shm/{slots.name}")


def test_batches_too_big_for_the_cap_get_no_slots():
    assert InputSlots.for_batches(max_batch=16, item_bytes=3 * 380 * 380 * 4, in_flight=2, tag="t2") is not None
    assert InputSlots.for_batches(max_batch=64, item_bytes=3 * 600 * 600 * 4, in_flight=2, tag="t3") is None


def test_regions_of_dead_clients_are_removed(tmp_path):
    dead = tmp_path / f"{PREFIX}999999999_abc"      # no such pid
    alive = tmp_path / f"{PREFIX}{os.getppid()}_abc"
    other = tmp_path / "someone_else"
    for p in (dead, alive, other):
        p.write_bytes(b"x")
    assert remove_stale(tmp_path) == [dead.name]
    assert alive.exists() and other.exists() and not dead.exists()
