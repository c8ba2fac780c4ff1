"""`fakewatch bench --triton` end to end with a real local Triton server (tiny settings: the figures themselves are
benchmark results in benchmarks/results/triton_bench, not test assertions)."""
from __future__ import annotations

import json

import pytest

from .triton_server import server_python_or_skip


def test_bench_triton_rows_against_a_real_server(tmp_path):
    python = server_python_or_skip()
    from fakewatch.benchmarks.triton_bench import run

    doc = run(batches=(1, 8), rounds=1, seconds=0.3, paced=(1,), paced_seconds=3.0, out=tmp_path, python=python,
              command="test")
    thr = [r for r in doc["rows"] if r["kind"] == "throughput"]
    kinds = ("python-backend", "pytriton", "python-backend-2x1")
    modes = ["in-process onnxruntime", "in-process onnxruntime, 2 streams"] + [
        f"triton ({s}), {k} in flight" for s in kinds for k in (1, 2)]
    assert [(r["batch"], r["mode"]) for r in thr] == [(b, m) for b in (1, 8) for m in modes]
    assert doc["servers"] == list(kinds) and set(doc["server_ready_s"]) == set(doc["servers"])
    per_core = {r["mode"]: r for r in thr if r["batch"] == 8}
    row = per_core["triton (python-backend-2x1), 2 in flight"]       # matched with ORT's own per-core mode
    assert row["matched_with"] == "in-process onnxruntime, 2 streams" and row["ratio_vs_matched"] == pytest.approx(
        row["img_s_median"] / per_core["in-process onnxruntime, 2 streams"]["img_s_median"], rel=0.01)
    assert doc["goals"]["per_core_ratio_b8_vs_streams"] == row["ratio_vs_matched"]
    for b in (1, 8):
        rows = {r["mode"]: r for r in thr if r["batch"] == b}
        base = rows["in-process onnxruntime"]["img_s_median"]
        for r in rows.values():
            assert r["img_s_median"] > 0
            assert r["ratio_vs_in_process"] == pytest.approx(r["img_s_median"] / base, rel=0.01)
            assert r["max_abs_logit_diff"] <= 1e-5          # the server runs the same model: same logits
    assert doc["goals"]["server"] == "python-backend"              # the goal is the default server's
    assert doc["goals"]["logits_met"] and doc["goals"]["throughput_ratio_b8_1_in_flight"] == \
        {r["mode"]: r for r in thr if r["batch"] == 8}[modes[2]]["ratio_vs_in_process"]
    assert doc["goals"]["in_flight"] == 2 and doc["goals"]["throughput_ratio_b8"] == \
        {r["mode"]: r for r in thr if r["batch"] == 8}[modes[3]]["ratio_vs_in_process"]     # as watch runs it
    assert all(r["server_timing_ms_whole_run"]["requests"] > 0 for r in thr if r["server"])
    paced = [r for r in doc["rows"] if r["kind"] == "paced"]
    assert [(r["backend"], r["in_flight"]) for r in paced] == [("onnxruntime", 1), ("triton", 1), ("triton", 2)]
    assert all(r["status"] == "ok" and r["frames"] > 0 and 0 < r["processed_min"] <= 1.05 for r in paced), paced
    for r in paced[1:]:                                      # the server's own timing reached the watch stages
        assert {"server_queue", "server_compute"} <= set(r["stage_p50_ms"]) and r["backend_failures"] == 0
    assert paced[0]["window_max"] == 1 and 1 <= paced[2]["window_max"] <= 2
    saved = json.loads((tmp_path / "triton_bench.json").read_text())
    assert saved["rows"] == doc["rows"] and "load average" in saved["load_before"]
    assert (tmp_path / "triton_bench.png").stat().st_size > 5000
    assert "| 8 | triton (python-backend), 1 in flight |" in (tmp_path / "triton_bench.md").read_text()
