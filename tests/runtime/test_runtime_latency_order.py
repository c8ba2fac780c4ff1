"""Stage durations follow the stamps' time order (GPU runners preprocess after batching)."""
from __future__ import annotations

from fakewatch.runtime.latency import stage_durations_ms


def test_cpu_order():
    t = {"capture": 0.0, "dequeue": 0.001, "roi": 0.002, "preprocess": 0.004, "batch": 0.005, "inference": 0.015}
    d = stage_durations_ms(t)
    assert round(d["preprocess"], 6) == 2.0 and round(d["batch"], 6) == 1.0 and round(d["total"], 6) == 15.0


def test_gpu_order_has_no_negative_stage():
    # device path: the batch closes first, then the fused kernel preprocesses it, then the engine runs
    t = {"capture": 0.0, "dequeue": 0.001, "roi": 0.002, "batch": 0.010, "preprocess": 0.011, "inference": 0.014}
    d = stage_durations_ms(t)
    assert all(v >= 0 for v in d.values())
    assert round(d["batch"], 6) == 8.0 and round(d["preprocess"], 6) == 1.0 and round(d["inference"], 6) == 3.0
