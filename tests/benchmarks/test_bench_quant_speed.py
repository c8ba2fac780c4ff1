"""`python -m fakewatch.benchmarks.quant_speed` on the tiny test network: every backend x mode timed, verdict = the
fastest INT8 configuration against the fastest FP32 one."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")


def test_quant_speed_times_every_config_and_compares_best_to_best(tmp_path, capsys):
    from fakewatch.benchmarks.quant_speed import BACKENDS, MODES, available_backends, main

    out = tmp_path / "qs.json"
    assert main(["--variants", "test", "--rounds", "2", "--iters", "1", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    backends = available_backends()
    assert doc["backends"] == backends and "onnxruntime" in backends
    res = doc["variants"]["test"]
    assert set(res["by_config"]) == {f"{b}/{m}" for b in backends for m in MODES}
    for row in res["by_config"].values():
        assert row["fp32_img_s"] > 0 and row["int8_img_s"] > 0
        assert abs(row["ratio"] - row["int8_img_s"] / row["fp32_img_s"]) < 0.01
    # the verdict: fastest INT8 anywhere vs fastest FP32 anywhere
    assert res["fp32_img_s"] == max(r["fp32_img_s"] for r in res["by_config"].values())
    assert res["int8_img_s"] == max(r["int8_img_s"] for r in res["by_config"].values())
    assert res["by_config"][res["fp32_config"]]["fp32_img_s"] == res["fp32_img_s"]
    assert res["int8_recipe"] == BACKENDS[res["int8_config"].split("/")[0]][0]
    assert abs(res["ratio"] - res["int8_img_s"] / res["fp32_img_s"]) < 0.01
    for b, row in res["by_backend"].items():      # each backend judged on its own recipe and best mode
        mine = [r for c, r in res["by_config"].items() if c.startswith(b + "/")]
        assert row["int8_img_s"] == max(r["int8_img_s"] for r in mine) and row["int8_recipe"] == BACKENDS[b][0]
    assert res["goal"] is None and res["meets_goal"] is True
    printed = capsys.readouterr().out
    assert "onnxruntime/throughput" in printed and "fastest int8" in printed and str(out) in printed


def test_quant_speed_refuses_a_missing_backend(monkeypatch, capsys):
    import fakewatch.benchmarks.quant_speed as qs
    import fakewatch.benchmarks.runners as runners

    monkeypatch.setattr(runners, "_has", lambda module: module != "openvino")   # as without fakewatch[openvino]
    assert qs.available_backends() == ["onnxruntime"]
    with pytest.raises(SystemExit):
        qs.main(["--variants", "test", "--backends", "openvino"])
    err = capsys.readouterr().err
    assert "not installed here" in err and "pip install 'fakewatch[openvino]'" in err
