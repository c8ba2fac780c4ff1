"""The nvstreammux-style batcher: full / timeout (timer from the first item) / overflow / no-input / flush."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.runtime.batcher import Batcher


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def fill_with(value):
    def fill(view):
        view[...] = value
    return fill


def test_full_batch_leaves_at_once_and_rows_are_in_place():
    clk = Clock()
    b = Batcher(3, 0.05, (2,), clock=clk)
    assert b.add("a", 1, fill_with(1)) == [] and b.add("b", 1, fill_with(2)) == []
    (batch,) = b.add("c", 1, fill_with(3))
    assert batch.reason == "full" and batch.items == ["a", "b", "c"] and batch.rows == 3
    assert batch.inputs[:, 0].tolist() == [1, 2, 3]
    assert batch.spans == [(0, 1), (1, 2), (2, 3)] and b.pending_rows == 0 and b.time_left() is None


def test_timeout_counts_from_first_item():
    clk = Clock()
    b = Batcher(8, 0.25, (1,), clock=clk)     # binary fractions: exact float arithmetic
    b.add("a", 1, fill_with(0))
    clk.t += 0.125
    b.add("b", 1, fill_with(0))
    assert b.time_left() == 0.125
    clk.t += 0.0625
    assert b.poll() is None
    clk.t += 0.0625
    batch = b.poll()
    assert batch is not None and batch.reason == "timeout" and batch.items == ["a", "b"]
    assert batch.closed_ts - batch.opened_ts == 0.25


def test_overflow_closes_pending_and_frames_are_never_split():
    b = Batcher(4, 1.0, (1,), clock=Clock())
    b.add("a", 3, fill_with(7))
    (first,) = b.add("b", 2, fill_with(9))      # 3 + 2 > 4: "a" leaves alone, "b" opens the next batch
    assert first.items == ["a"] and first.rows == 3
    assert b.pending_rows == 2
    last = b.flush()
    assert last.items == ["b"] and last.reason == "flush" and last.inputs[:, 0].tolist() == [9, 9]
    with pytest.raises(ValueError, match="at most 4"):
        b.add("c", 5, fill_with(0))


def test_items_without_rows():
    b = Batcher(4, 1.0, (1,), clock=Clock())
    (alone,) = b.add("noface", 0)                # nothing pending: out at once, nothing to infer
    assert alone.rows == 0 and alone.reason == "no-input"
    b.add("a", 1, fill_with(1))
    assert b.add("noface2", 0) == []             # rides along, keeps per-stream order
    batch = b.flush()
    assert batch.items == ["a", "noface2"] and batch.spans == [(0, 1), (1, 1)]
    outs = np.arange(batch.rows)
    assert batch.outputs_of(outs, 1).size == 0


def test_zero_wait_batches_only_what_is_already_there():
    clk = Clock()
    b = Batcher(4, 0.0, (1,), clock=clk)
    assert b.add("a", 1, fill_with(0)) == [] and b.add("b", 1, fill_with(0)) == []   # arrived together
    assert b.time_left() == 0.0
    batch = b.poll()
    assert batch.items == ["a", "b"] and batch.reason == "timeout"


def test_target_items_closes_with_one_frame_per_live_source():
    b = Batcher(8, 10.0, (1,), clock=Clock())
    b.target_items = 3
    assert b.add("a", 1, fill_with(0)) == [] and b.add("b", 2, fill_with(0)) == []
    (batch,) = b.add("c", 1, fill_with(0))
    assert batch.reason == "full" and batch.rows == 4 and len(batch.items) == 3


def test_default_max_wait():
    from fakewatch.runtime.batcher import default_max_wait_ms

    assert default_max_wait_ms(False, [25.0, 30.0]) == 0.0
    assert default_max_wait_ms(True, [25.0, 50.0, None]) == 20.0
    assert default_max_wait_ms(True, [10.0]) == 40.0 and default_max_wait_ms(True, []) == 40.0
