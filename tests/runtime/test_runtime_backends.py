"""Artifact detection by content, the backend table, and the onnxruntime / torch runners."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from fakewatch.core.checkpoint import default_spec
from fakewatch.core.contract import write_sidecar
from fakewatch.runtime.backends import ARTIFACT_TYPES, BACKENDS, detect_artifact, load_runner
from fakewatch.runtime.backends.base import BackendError
from fakewatch.runtime.pipeline import check_watchable


def test_import_runtime_is_light():
    code = ("import sys, fakewatch.runtime, fakewatch.runtime.backends, fakewatch.runtime.pipeline, "
            "fakewatch.runtime.watch_cli, fakewatch.runtime.alerts, fakewatch.runtime.latency, "
            "fakewatch.runtime.decision, fakewatch.runtime.batcher, fakewatch.core.roi, fakewatch.core.preprocess\n"
            "heavy = [m for m in ('torch', 'tensorrt', 'pycuda', 'timm', 'openvino') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd="/")  # the installed package


def test_tables_cover_the_briefing():
    assert set(BACKENDS) == {"onnxruntime", "torch", "tensorrt", "openvino", "triton"}
    assert [k.name for k in ARTIFACT_TYPES] == ["tensorrt-plan", "onnx", "torch-checkpoint"]


def test_onnx_detected_and_run_by_onnxruntime(tiny_onnx, tiny_spec):
    assert detect_artifact(tiny_onnx).name == "onnx"
    runner = load_runner(tiny_onnx, intra_op_threads=1)
    assert runner.name == "onnxruntime" and runner.spec.replace(provenance={}) == tiny_spec and not runner.is_active
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    with runner:
        y = runner.infer(x)
        y1 = runner.infer(x[1:2])
        assert runner.providers[-1] == "CPUExecutionProvider"
        with pytest.raises(BackendError, match=r"expects input \[N, 3, 64, 64\]"):
            runner.infer(x[:, :, :32])
    assert y.shape == (3, 1) and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.abs(y1[0] - y[1]).max() < 1e-5            # batch rows are independent
    assert runner.last_inference_ms > 0 and not runner.is_active
    with pytest.raises(BackendError, match="not active"):
        runner.infer(x)


def test_shard_bounds_split_evenly_and_cover_every_row():
    from fakewatch.runtime.backends.sharding import shard_bounds

    assert shard_bounds(8, 2) == [(0, 4), (4, 8)]
    assert shard_bounds(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert shard_bounds(1, 4) == [(0, 1)]              # never an empty shard
    for n in range(1, 20):
        for k in range(1, 6):
            b = shard_bounds(n, k)
            sizes = [e - s for s, e in b]
            assert b[0][0] == 0 and b[-1][1] == n and all(x >= 1 for x in sizes) and max(sizes) - min(sizes) <= 1
            assert all(b[i][1] == b[i + 1][0] for i in range(len(b) - 1))


def test_onnxruntime_streams_give_the_same_logits_in_order(tiny_onnx):
    from fakewatch.runtime.backends.sharding import resolve_streams

    x = np.random.default_rng(2).standard_normal((7, 3, 64, 64)).astype(np.float32)
    x[3] *= 5   # rows differ enough that a swapped shard would show
    with load_runner(tiny_onnx, intra_op_threads=1) as one:
        ref = one.infer(x)
    with load_runner(tiny_onnx, streams=3) as sharded:
        assert sharded._pool is not None and sharded.streams == 3
        got = sharded.infer(x)
        got1 = sharded.infer(x[2:3])                    # a batch smaller than streams runs as one shard
    assert not sharded.is_active and sharded._pool is None
    assert np.abs(got - ref).max() < 1e-5 and np.abs(got1[0] - ref[2]).max() < 1e-5
    assert resolve_streams("auto") >= 1
    for bad in (0, -2, "many"):
        with pytest.raises(ValueError, match="streams must be a count >= 1 or 'auto'"):
            load_runner(tiny_onnx, streams=bad)


def test_fixed_batch_export_ignores_streams_and_pads(tiny_onnx, tiny_onnx_fixed4):
    fixed = tiny_onnx_fixed4
    x = np.random.default_rng(3).standard_normal((3, 3, 64, 64)).astype(np.float32)
    with load_runner(tiny_onnx, intra_op_threads=1) as one:
        ref = one.infer(x)
    with load_runner(fixed, streams=2) as runner:
        assert runner.max_batch == 4 and runner._pool is None   # exactly 4 rows per run: nothing to shard
        got = runner.infer(x)                                   # 3 rows padded to 4, 3 returned
    assert got.shape == (3, 1) and np.abs(got - ref).max() < 1e-5


def test_torch_checkpoint_matches_exported_onnx(tmp_path, tiny_spec):
    torch = pytest.importorskip("torch")
    from fakewatch.core.checkpoint import build_model, save_checkpoint
    from fakewatch.export.onnx_export import export_onnx

    torch.manual_seed(1)
    model = build_model(tiny_spec, exportable=True)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, tiny_spec)
    onnx_path = tmp_path / "m.onnx"
    export_onnx(model, tiny_spec, onnx_path)
    assert detect_artifact(ckpt).name == "torch-checkpoint"
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with load_runner(ckpt) as tr, load_runner(onnx_path) as ort_runner:
        assert tr.name == "torch" and ort_runner.name == "onnxruntime"
        assert np.abs(tr.infer(x) - ort_runner.infer(x)).max() < 1e-4


def test_tensorrt_plan_is_recognised_by_its_sidecar(tmp_path, tiny_spec):
    plan = tmp_path / "model.plan"                  # suffix is irrelevant: the sidecar decides
    plan.write_bytes(b"\x00\x01ftrt-not-a-real-engine" * 10)
    with pytest.raises(ValueError, match="unrecognised or corrupt"):
        detect_artifact(plan)
    write_sidecar(plan, tiny_spec, extra={"tensorrt": {"version": "10.9.0"}})
    assert detect_artifact(plan).name == "tensorrt-plan"
    runner = load_runner(plan)                      # constructing touches no GPU
    assert runner.name == "tensorrt" and not runner.is_active
    with pytest.raises(ValueError, match="cannot run it"):
        load_runner(plan, "onnxruntime")


def test_bad_files_give_one_clear_error(tmp_path, tiny_onnx):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_runner(tmp_path / "nope.onnx")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_runner(empty)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(ValueError, match="unrecognised or corrupt"):
        load_runner(junk)
    truncated = tmp_path / "trunc.onnx"            # ONNX header, no sidecar, cut short
    truncated.write_bytes(tiny_onnx.read_bytes()[:300])
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        load_runner(truncated)
    with pytest.raises(ValueError, match="cannot run it"):
        load_runner(tiny_onnx, "torch")
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        load_runner(tiny_onnx, "tflite")


def test_contract_mismatch_is_refused_at_activate(tmp_path, bright_onnx):
    copy = tmp_path / "renamed.onnx"
    shutil.copy(bright_onnx, copy)
    from fakewatch.core.contract import load_spec

    write_sidecar(copy, load_spec(bright_onnx).replace(input_name="pixels"))
    runner = load_runner(copy)
    with pytest.raises(BackendError, match="contract names input 'pixels'"):
        runner.activate()
    assert not runner.is_active


def test_watch_refuses_class_logits():
    spec = default_spec("test", num_outputs=1000, roi="full")
    with pytest.raises(ValueError, match="needs a deepfake detector with one 'fake_logit' output"):
        check_watchable(spec, "imagenet.onnx")
    check_watchable(default_spec("test"))
