"""Timing primitives, the row schema and the pieces of the report that are pure functions."""
from __future__ import annotations

import time

import numpy as np
import pytest

from fakewatch.benchmarks.measure import PeakRss, percentiles_ms, time_calls
from fakewatch.benchmarks.schema import COLUMNS, finalize, new_row
from fakewatch.benchmarks.sweep import BenchConfig, model_cases, summarize


def test_percentiles_exact_on_known_samples():
    p = percentiles_ms(list(range(1, 101)))  # 1..100
    assert p["p50"] == pytest.approx(50.5)
    assert p["p90"] == pytest.approx(90.1)
    assert p["p99"] == pytest.approx(99.01)
    assert p["min"] == 1 and p["mean"] == pytest.approx(50.5)
    assert all(np.isnan(v) for v in percentiles_ms([]).values())


def test_time_calls_counts_and_throughput():
    calls = []
    res = time_calls(lambda: calls.append(1), batch=4, warmup=3, iters=20, max_seconds=None)
    assert len(calls) == 23 and res.iters == 20 and res.warmup == 3 and not res.stopped_by_budget
    assert res.throughput == pytest.approx(4 * 20 / res.wall_s)


def test_time_calls_budget_stops_slow_functions_but_keeps_min_iters():
    res = time_calls(lambda: time.sleep(0.02), batch=1, warmup=1, iters=1000, max_seconds=0.1, min_iters=5)
    assert res.stopped_by_budget
    assert 5 <= res.iters < 20
    assert all(lat >= 19.0 for lat in res.latencies_ms)  # sleep(20 ms) measured as at least ~20 ms


def test_peak_rss_sees_a_temporary_allocation():
    with PeakRss(interval_s=0.005) as rss:
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
        time.sleep(0.05)
        del block
    assert rss.delta_mb > 150
    assert rss.peak_mb >= rss.baseline / 2**20 + 150


def test_row_schema_rejects_unknown_columns_and_reasonless_skips():
    with pytest.raises(KeyError):
        new_row("model", not_a_column=1)
    with pytest.raises(ValueError):
        new_row("bogus")
    with pytest.raises(ValueError, match="reason"):
        finalize(new_row("model", status="skipped"))
    row = finalize(new_row("model", latency_p50_ms=float("nan"), throughput_ips=123.456789))
    assert list(row) == list(COLUMNS)
    assert row["latency_p50_ms"] is None and row["throughput_ips"] == 123.46


def test_plan_is_the_full_product_in_order():
    cfg = BenchConfig(variants=("b0", "lite0"), backends=("onnxruntime", "torch"), precisions=("fp32",),
                      batches=(1, 8))
    labels = [c.label for c in model_cases(cfg)]
    assert labels == ["b0 onnxruntime/fp32 b1", "b0 onnxruntime/fp32 b8", "b0 torch/fp32 b1", "b0 torch/fp32 b8",
                      "lite0 onnxruntime/fp32 b1", "lite0 onnxruntime/fp32 b8", "lite0 torch/fp32 b1",
                      "lite0 torch/fp32 b8"]


def test_summary_real_time_lists_use_batch1_throughput():
    rows = [new_row("model", variant="b0", backend="onnxruntime", precision="fp32", batch=1, throughput_ips=40.0),
            new_row("model", variant="b4", backend="onnxruntime", precision="fp32", batch=1, throughput_ips=27.0),
            new_row("model", variant="b7", backend="onnxruntime", precision="fp32", batch=1, throughput_ips=2.0),
            new_row("model", variant="b7", backend="onnxruntime", precision="fp32", batch=8, throughput_ips=99.0),
            new_row("model", variant="b1", backend="tensorrt", precision="fp16", batch=1, status="skipped",
                    reason="tensorrt: not installed")]
    s = summarize(rows)
    assert s["sustain_25fps_batch1"] == {"onnxruntime/fp32": ["b0", "b4"]}
    assert s["sustain_30fps_batch1"] == {"onnxruntime/fp32": ["b0"]}
