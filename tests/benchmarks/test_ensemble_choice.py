"""benchmarks/ensemble_choice: both ways of running an ensemble give the same scores, and the memory of each way is
measured in its own process (tiny timm test members; no timing is asserted)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("onnxruntime")

from fakewatch.benchmarks.ensemble_choice import main  # noqa: E402


def test_ensemble_choice_writes_agreeing_scores_and_per_way_memory(tmp_path):
    assert main(["--variant", "test", "--members", "2", "--size", "64", "--batches", "1,2", "--iters", "1",
                 "--threads", "1", "--no-simplify", "--name", "tiny", "-o", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "tiny.json").read_text())
    assert [row["batch"] for row in r["rows"]] == [1, 2]
    assert all(row["max_prob_diff"] < 1e-5 for row in r["rows"])      # one graph == mean of the list's sigmoids
    assert r["under_protobuf_2gib"] and 0 < r["weight_gb"] < 0.01
    for way in ("one_onnx", "list"):
        mem = r["memory_mb"][way]
        assert mem["peak_rss_mb"] >= mem["baseline_mb"] > 0 and mem["after_run_mb"] > 0
    assert r["command"].endswith("--no-simplify --name tiny") and not r["simplified"]
    md = (tmp_path / "tiny.md").read_text()
    assert "memory (fresh process" in md and "under the 2 GiB" in md and f"- choice: {r['choice']}" in md


def test_the_choice_follows_the_measured_rows(tmp_path):
    from fakewatch.benchmarks.ensemble_choice import choose

    rows = [{"batch": 1, "one_onnx_ms": 100.0, "list_ms": 106.0, "max_prob_diff": 0.0}]
    mem = {"one_onnx": {"after_run_mb": 3800.0}, "list": {"after_run_mb": 2900.0}}
    assert choose({"rows": rows, "memory_mb": mem}) == \
        "one ONNX (faster at every batch measured: 1.06x at batch 1; it holds +900 MB of RSS against the list)"
    rows.append({"batch": 4, "one_onnx_ms": 500.0, "list_ms": 450.0, "max_prob_diff": 0.0})
    assert choose({"rows": rows}).startswith("list of models (one ONNX was slower at batch 4)")
    result = tmp_path / "old.json"                   # a result written before the choice existed is re-rendered
    result.write_text(json.dumps({"rows": rows[:1], "members": 2, "variant": "test", "input": 64, "threads": 1,
                                  "command": "c", "one_onnx_mb": 1, "list_mb": 1, "one_onnx_load_s": 0.1,
                                  "list_load_s": 0.1}))
    assert main(["--render", str(result)]) == 0
    assert json.loads(result.read_text())["choice"].startswith("one ONNX")
    assert "- choice: one ONNX" in (tmp_path / "old.md").read_text()
