"""The OpenVINO runner against ONNX Runtime on the same artifacts, its throughput mode, its errors, and the
default-backend rule for INT8 artifacts quantized with ``--target openvino``."""
from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from fakewatch.core.contract import load_spec, write_sidecar
from fakewatch.runtime.backends import artifact_backend, load_runner
from fakewatch.runtime.backends.base import BackendError


@pytest.fixture(scope="module")
def ov():
    return pytest.importorskip("openvino")


def _x(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 3, 64, 64)).astype(np.float32)
    x[n // 2] *= 4     # rows differ enough that swapped shards would show
    return x


def test_openvino_matches_onnxruntime_fp32(ov, tiny_onnx):
    x = _x(7)
    with load_runner(tiny_onnx, "onnxruntime", intra_op_threads=1) as ref_runner:
        ref = ref_runner.infer(x)
    with load_runner(tiny_onnx, "openvino") as r:
        assert r.name == "openvino" and r.device == "CPU" and ov.__version__.startswith(r.version + "-")
        # f32 unless asked: OpenVINO's own default on AMX/BF16 CPUs would be bf16
        assert r.config == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        got = r.infer(x)
        one = r.infer(x[3:4])
        again = r.infer(x)
        assert sorted(r._compiled) == [1, 7]          # static shapes: one compiled model per size met
        assert r.last_inference_ms > 0
    assert not r.is_active and r._compiled == {}
    assert got.shape == (7, 1) and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-4 and np.abs(one[0] - ref[3]).max() < 1e-4
    assert np.array_equal(got, again)


@pytest.mark.parametrize("shapes", ["static", "dynamic"])
def test_openvino_streams_shard_in_order(ov, tiny_onnx, shapes):
    x = _x(7, seed=1)
    with load_runner(tiny_onnx, "onnxruntime", intra_op_threads=1) as ref_runner:
        ref = ref_runner.infer(x)
    with load_runner(tiny_onnx, "openvino", streams=3, threads=1, shapes=shapes) as r:
        assert r.config["PERFORMANCE_HINT"] == "THROUGHPUT" and r.config["NUM_STREAMS"] == "3"
        assert r.config["INFERENCE_NUM_THREADS"] == "3"          # threads are per stream, as for onnxruntime
        got = r.infer(x)                                          # shards of 3, 2, 2 rows
        small = r.infer(x[5:7])                                   # fewer rows than streams: 2 shards of 1
        if shapes == "static":
            assert sorted(r._compiled) == [1, 2, 3]
        else:
            assert list(r._compiled) == [None]
    assert np.abs(got - ref).max() < 1e-4 and np.abs(small - ref[5:7]).max() < 1e-4


def test_openvino_fixed_batch_export_pads(ov, tiny_onnx, tiny_onnx_fixed4):
    fixed = tiny_onnx_fixed4
    x = _x(3, seed=2)
    with load_runner(tiny_onnx, "onnxruntime", intra_op_threads=1) as ref_runner:
        ref = ref_runner.infer(x)
    with load_runner(fixed, "openvino", streams=2) as r:
        assert r.max_batch == 4 and r.streams == 1 and r.shapes == "fixed"
        got = r.infer(x)
        with pytest.raises(BackendError, match="exceeds this openvino model's max batch 4"):
            r.infer(_x(5))
    assert got.shape == (3, 1) and np.abs(got - ref).max() < 1e-4


def test_openvino_errors_are_clear(ov, tiny_onnx, tmp_path):
    for bad, match in ((dict(inference_precision="fp8"), "inference_precision must be one of"),
                       (dict(shapes="ragged"), "shapes must be one of"),
                       (dict(streams=0), "openvino streams must be a count >= 1 or 'auto'"),
                       (dict(threads=-1), "threads must be >= 0")):
        with pytest.raises(ValueError, match=match):
            load_runner(tiny_onnx, "openvino", **bad)
    runner = load_runner(tiny_onnx, "openvino", device="abacus")
    with pytest.raises(BackendError, match=r"no device 'ABACUS' here \(devices: \[.*'CPU'.*use --device cpu"):
        runner.activate()
    copy = tmp_path / "renamed.onnx"
    shutil.copy(tiny_onnx, copy)
    write_sidecar(copy, load_spec(tiny_onnx).replace(input_name="pixels"))
    runner = load_runner(copy, "openvino")
    with pytest.raises(BackendError, match="contract names input 'pixels'"):
        runner.activate()
    assert not runner.is_active


def test_openvino_missing_package_is_one_clear_error(tiny_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)        # import openvino -> ImportError
    runner = load_runner(tiny_onnx, "openvino")               # constructing is cheap and needs nothing
    with pytest.raises(BackendError, match=r"pip install 'fakewatch\[openvino\]', or run tiny.onnx with "
                                           r"--backend onnxruntime"):
        runner.activate()


def test_openvino_recipe_artifact_defaults_to_openvino(tiny_onnx, tmp_path, monkeypatch, capsys):
    """An INT8 model records the backend its recipe was tuned for; the runtime follows it when it can."""
    import fakewatch.runtime.backends as backends

    tuned = tmp_path / "tuned.onnx"
    shutil.copy(tiny_onnx, tuned)
    spec = load_spec(tiny_onnx)
    write_sidecar(tuned, spec.replace(precision="int8").with_provenance(
        quantization={"target": "openvino", "backend": "openvino"}))
    monkeypatch.setattr(backends, "_installed", lambda b: True)
    assert artifact_backend(tuned) == "openvino" and load_runner(tuned).name == "openvino"
    assert artifact_backend(tiny_onnx) == "onnxruntime"          # FP32: the type's default
    monkeypatch.setattr(backends, "_installed", lambda b: False)
    assert load_runner(tuned).name == "onnxruntime"               # still runs, slower, and says so
    err = capsys.readouterr().err
    assert "quantized for the openvino backend, which is not installed" in err
    assert "pip install 'fakewatch[openvino]'" in err
    trt = tmp_path / "trt.onnx"                                   # tensorrt-recipe ONNX: not a plan, ORT runs it
    shutil.copy(tiny_onnx, trt)
    write_sidecar(trt, spec.replace(precision="int8").with_provenance(
        quantization={"target": "tensorrt", "backend": "tensorrt"}))
    assert artifact_backend(trt) == "onnxruntime"
