"""`python -m benchmarks.quant_speed` on the tiny test network: both modes timed, verdict = each precision's best."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")


def test_quant_speed_times_both_modes_and_compares_best_to_best(tmp_path, capsys):
    from benchmarks.quant_speed import MODES, main

    out = tmp_path / "qs.json"
    assert main(["--variants", "test", "--rounds", "2", "--iters", "1", "-o", str(out)]) == 0
    res = json.loads(out.read_text())["variants"]["test"]
    assert set(res["by_mode"]) == set(MODES) == {"latency", "throughput"}
    for mode, row in res["by_mode"].items():
        assert row["fp32_img_s"] > 0 and row["int8_img_s"] > 0
        assert abs(row["ratio"] - row["int8_img_s"] / row["fp32_img_s"]) < 0.01
    # the verdict uses each precision in its own fastest mode
    assert res["fp32_img_s"] == max(r["fp32_img_s"] for r in res["by_mode"].values())
    assert res["int8_img_s"] == max(r["int8_img_s"] for r in res["by_mode"].values())
    assert res["by_mode"][res["fp32_mode"]]["fp32_img_s"] == res["fp32_img_s"]
    assert abs(res["ratio"] - res["int8_img_s"] / res["fp32_img_s"]) < 0.01
    assert res["goal"] is None and res["meets_goal"] is True
    printed = capsys.readouterr().out
    assert "latency" in printed and "throughput" in printed and str(out) in printed
