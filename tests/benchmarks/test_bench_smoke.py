"""`fakewatch bench` end to end on the tiny test network: output files and their schema (not the timings)."""
from __future__ import annotations

import csv
import importlib.util
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("matplotlib")

from fakewatch.benchmarks.schema import COLUMNS  # noqa: E402
from fakewatch.cli import main  # noqa: E402

TENSORRT_HERE = importlib.util.find_spec("tensorrt") is not None   # the suite must pass on a TensorRT machine too


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench-work")
    out = tmp_path_factory.mktemp("bench-out") / "smoke"
    rc = main(["bench", "--variants", "test", "--backend", "onnxruntime,openvino,torch,tensorrt",
               "--precision", "fp32,int8",
               "--batch", "1,2", "--iters", "4", "--warmup", "1", "--max-seconds", "2",
               "--e2e-variants", "test", "--e2e-sources", "1,2", "--e2e-batch", "2", "--e2e-frames", "16",
               "--workdir", str(work), "-o", str(out)])
    return rc, out


def _rows(out):
    return json.loads((out / "results.json").read_text())["rows"]


def test_writes_every_file(bench_run):
    rc, out = bench_run
    assert rc == 0
    for name in ("results.csv", "results.json", "results.md"):
        assert (out / name).stat().st_size > 0
    for name in ("latency_vs_variant.png", "throughput_vs_variant.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_records_environment_and_command(bench_run):
    _, out = bench_run
    doc = json.loads((out / "results.json").read_text())
    env = doc["environment"]
    assert env["machine"]["cpu_model"] and env["machine"]["logical_cores"] >= 1
    assert isinstance(env["machine"]["gpus"], list)
    assert env["libraries"]["onnxruntime"] and env["libraries"]["numpy"]
    assert "bench" in env["command"] and "--variants test" in env["command"]
    assert env["timestamp_utc"].endswith("+00:00")
    assert "load_avg_1m_start" in env and "load_avg_1m_end" in env
    assert doc["columns"] == list(COLUMNS)
    assert doc["config"]["variants"] == ["test"] and doc["config"]["batches"] == [1, 2]


def test_csv_matches_json(bench_run):
    _, out = bench_run
    with open(out / "results.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == list(COLUMNS)
        csv_rows = list(reader)
    rows = _rows(out)
    assert len(csv_rows) == len(rows)
    for c, j in zip(csv_rows, rows):
        assert (c["kind"], c["variant"], c["backend"], c["precision"], c["status"]) == (
            j["kind"], j["variant"], j["backend"], j["precision"], j["status"])


def test_model_rows_cover_the_plan_with_real_or_explained_values(bench_run):
    _, out = bench_run
    model = [r for r in _rows(out) if r["kind"] == "model"]
    assert len(model) == 4 * 2 * 2  # backends x precisions x batches
    by = {(r["backend"], r["precision"], r["batch"]): r for r in model}
    for batch in (1, 2):
        for key in (("onnxruntime", "fp32", batch), ("onnxruntime", "int8", batch), ("torch", "fp32", batch)):
            r = by[key]
            assert r["status"] == "ok", r
            assert r["iters"] >= 4 and r["warmup"] == 1
            assert 0 < r["latency_p50_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"]
            assert r["throughput_ips"] > 0 and r["peak_rss_mb"] > 10 and r["size_mb"] > 0
            assert r["params"] > 10_000 and r["gmacs"] > 0
            assert r["runner_impl"] == "fakewatch.runtime.backends"
    # int8 is smaller on disk than fp32; same network so same params/MACs
    assert by[("onnxruntime", "int8", 1)]["size_mb"] < by[("onnxruntime", "fp32", 1)]["size_mb"]
    assert by[("onnxruntime", "int8", 1)]["gmacs"] == by[("onnxruntime", "fp32", 1)]["gmacs"]
    # OpenVINO rows: the openvino-recipe INT8 artifact, or why they cannot run
    for key in (("openvino", "fp32", 1), ("openvino", "int8", 2)):
        r = by[key]
        if importlib.util.find_spec("openvino") is None:
            assert r["status"] == "skipped" and "fakewatch[openvino]" in r["reason"]
        else:
            assert r["status"] == "ok" and r["throughput_ips"] > 0, r
    if by[("openvino", "int8", 1)]["status"] == "ok":
        assert by[("openvino", "int8", 1)]["size_mb"] < by[("openvino", "fp32", 1)]["size_mb"]
    # rows that cannot run here say why instead of carrying numbers
    assert by[("torch", "int8", 1)]["status"] == "skipped"
    for prec in ("fp32", "int8"):
        r = by[("tensorrt", prec, 1)]
        if not TENSORRT_HERE:
            assert r["status"] == "skipped" and "tensorrt" in r["reason"] and r["throughput_ips"] is None
        else:      # installed: the row ran, or says why it could not (no GPU, no pycuda); never a bare number
            assert (r["status"] == "ok" and r["throughput_ips"] > 0) or \
                (r["status"] == "skipped" and r["reason"] and r["throughput_ips"] is None), r


def test_e2e_and_naive_rows_and_their_ratios(bench_run):
    _, out = bench_run
    rows = _rows(out)
    naive = [r for r in rows if r["kind"] == "naive"]
    e2e = [r for r in rows if r["kind"] == "e2e"]
    assert len(naive) == 1 and naive[0]["status"] == "ok", naive
    assert naive[0]["frames"] == 16 and naive[0]["naive_fps"] > 0 and naive[0]["frame_size"] == "640x480"
    assert [r["sources"] for r in e2e] == [1, 2]
    for r in e2e:
        assert r["status"] == "ok", r
        assert r["frames"] == 16 * r["sources"]  # unpaced lossless sources: every frame scored
        assert r["capture_to_alert_p50_ms"] <= r["capture_to_alert_p99_ms"]
        assert r["model_only_ips"] > 0  # measured right after the e2e row at the batch the pipeline really ran
        assert 1 <= r["mean_batch"] <= r["batch"] == 2
        assert f"model-only reference: batch {max(1, round(r['mean_batch']))}" in r["note"]
        assert r["e2e_ratio"] == pytest.approx(r["throughput_ips"] / r["model_only_ips"], rel=0.01, abs=2e-3)
        assert r["speedup_vs_naive"] == pytest.approx(r["throughput_ips"] / naive[0]["naive_fps"], rel=0.01, abs=2e-2)


def test_markdown_has_machine_tables_and_skip_reasons(bench_run):
    _, out = bench_run
    md = (out / "results.md").read_text()
    assert "## Model only" in md and "## End to end and naive loop" in md
    assert "machine:" in md and "load average" in md
    if not TENSORRT_HERE:
        assert "tensorrt: not installed" in md


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    assert main(["bench", "--variants", "b99", "-o", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "fakewatch bench: error:" in err and "b99" in err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--batch", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["bench", "--backend", "tensorflow"])
    with pytest.raises(SystemExit):
        main(["bench", "--streams", "0,auto"])
    assert "stream counts (>= 1) or 'auto'" in capsys.readouterr().err


def test_streams_rows_for_cpu_backends_only(tmp_path):
    """--streams 1,2 times the onnxruntime rows once per value (the throughput mode of watch --streams); torch,
    which has no such mode, gets one row."""
    out = tmp_path / "streams"
    rc = main(["bench", "--variants", "test", "--backend", "onnxruntime,torch", "--precision", "fp32",
               "--batch", "4", "--streams", "1,2", "--iters", "3", "--warmup", "1", "--max-seconds", "2",
               "--no-e2e", "--no-naive", "--workdir", str(tmp_path / "work"), "-o", str(out)])
    assert rc == 0
    rows = [r for r in _rows(out) if r["kind"] == "model"]
    got = sorted((r["backend"], r["streams"], r["status"]) for r in rows)
    assert got == [("onnxruntime", 1, "ok"), ("onnxruntime", 2, "ok"), ("torch", 1, "ok")], got
    two = next(r for r in rows if r["streams"] == 2)
    assert two["note"] == "streams 2" and two["throughput_ips"] > 0
    assert "| streams |" in (out / "results.md").read_text()
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["streams"] == ["1", "2"] and "--streams 1,2" in doc["environment"]["command"]
