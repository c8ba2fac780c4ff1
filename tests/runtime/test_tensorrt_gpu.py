"""GPU checks (skipped without CUDA; see tests/conftest.py): the kernel via CuPy vs its NumPy twin, and a real
TensorRT engine built from the tiny ONNX, run by TensorRTRunner and compared with ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.runtime.cuda_preprocess import reference_bilinear

pytestmark = pytest.mark.gpu
RNG = np.random.default_rng(3)


def _batch():
    images = [RNG.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((480, 640), (97, 131), (64, 64))]
    boxes = [(100, 50, 400, 350), (3, 5, 90, 77), (0, 0, 64, 64)]
    return images, boxes


@pytest.mark.parametrize("dtype,atol", [(np.float32, 1e-4), (np.float16, 4e-3)])
@pytest.mark.parametrize("crop_on_host", [True, False])
def test_cupy_kernel_matches_reference(tiny_spec, dtype, atol, crop_on_host):
    cp = pytest.importorskip("cupy")
    from fakewatch.runtime.cuda_preprocess import CupyPreprocessor

    images, boxes = _batch()
    got = cp.asnumpy(CupyPreprocessor(tiny_spec, crop_on_host=crop_on_host)(images, boxes, out_dtype=dtype))
    ref = reference_bilinear(images, boxes, tiny_spec)
    assert got.dtype == dtype and got.shape == ref.shape
    assert np.abs(got.astype(np.float32) - ref).max() <= atol


@pytest.fixture(scope="module")
def tiny_engine(tiny_onnx, tmp_path_factory):
    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda.driver")
    from fakewatch.export.engine import BuildOptions, parse_profile
    from fakewatch.export.engine_build import build_engine

    out = tmp_path_factory.mktemp("engine") / "tiny.engine"
    cache = out.with_suffix(".cache")
    report = build_engine(tiny_onnx, out, BuildOptions(precision="fp32", profile=parse_profile("1:2:4"),
                                                       timing_cache=cache))
    assert report.engine.is_file() and cache.is_file()
    return report


def _ort(onnx_path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_engine_matches_onnxruntime(tiny_onnx, tiny_engine, cuda_graph):
    from fakewatch.runtime.backends import load_runner

    x = RNG.normal(0, 1, (3, 3, 64, 64)).astype(np.float32)
    with load_runner(tiny_engine.engine, cuda_graph=cuda_graph) as runner:
        assert runner.max_batch == 4
        for n in (1, 3, 3):  # 3 twice: the second call replays the captured graph
            out = runner.infer(x[:n])
            assert runner.last_inference_ms > 0
            assert np.abs(out - _ort(tiny_onnx, x[:n])).max() < 1e-3
        assert runner.graph_error is None


def test_fused_preprocess_then_infer(tiny_onnx, tiny_engine, tiny_spec):
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.cuda_preprocess import preprocess_into

    images, boxes = _batch()
    with load_runner(tiny_engine.engine) as runner:
        n = preprocess_into(runner, images, boxes)
        gpu = runner.infer_prepared(n)
    ref = _ort(tiny_onnx, reference_bilinear(images, boxes, tiny_spec))
    assert np.abs(gpu - ref).max() < 1e-3
