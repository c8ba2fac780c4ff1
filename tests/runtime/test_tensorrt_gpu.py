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


def _build(tiny_onnx, path, batch, **kw):
    from fakewatch.export.engine import BuildOptions, parse_profile
    from fakewatch.export.engine_build import build_engine

    return build_engine(tiny_onnx, path, BuildOptions(precision="fp32", profile=parse_profile(batch), **kw))


def test_graphs_survive_shape_changes_1_3_1_max(tiny_onnx, tiny_engine):
    """Review item: a graph captured at one batch size replayed after other shapes ran on the same context."""
    from fakewatch.runtime.backends import load_runner

    x = RNG.normal(0, 1, (4, 3, 64, 64)).astype(np.float32)
    with load_runner(tiny_engine.engine, cuda_graph=True, max_graphs=2) as runner:
        for n in (1, 3, 1, 4, 3, 1):          # with max_graphs=2 this also evicts and recaptures
            assert np.abs(runner.infer(x[:n]) - _ort(tiny_onnx, x[:n])).max() < 1e-3, n
        assert runner.graph_error is None


def test_min_batch_profile_pads_partial_batches(tiny_onnx, tmp_path):
    from fakewatch.runtime.backends import load_runner

    report = _build(tiny_onnx, tmp_path / "fixed4.engine", "4")
    x = RNG.normal(0, 1, (3, 3, 64, 64)).astype(np.float32)
    with load_runner(report.engine, cuda_graph=True) as runner:
        for n in (1, 3):
            out = runner.infer(x[:n])
            assert out.shape == (n, 1) and np.abs(out - _ort(tiny_onnx, x[:n])).max() < 1e-3


def test_truncated_engine_is_refused_before_tensorrt_reads_it(tiny_onnx, tiny_engine, tmp_path):
    import shutil

    from fakewatch.core.tensorrt import EngineCompatError
    from fakewatch.runtime.backends import load_runner

    cut = tmp_path / "cut.engine"
    cut.write_bytes(tiny_engine.engine.read_bytes()[:1000])
    shutil.copy(str(tiny_engine.sidecar), str(cut) + ".json")
    with pytest.raises(EngineCompatError, match="truncated"):
        load_runner(cut).activate()


def test_engine_for_device_n_is_built_there(tiny_onnx, tmp_path):
    cuda = pytest.importorskip("pycuda.driver")
    cuda.init()
    if cuda.Device.count() < 2:
        pytest.skip("one GPU: --device 1 cannot be checked")
    from fakewatch.core.contract import read_sidecar_doc

    report = _build(tiny_onnx, tmp_path / "d1.engine", "1:2:4", device=1)
    doc = read_sidecar_doc(report.engine)["tensorrt"]
    assert doc["device"] == 1 and doc["gpu_name"] == cuda.Device(1).name()
    assert doc["rebuild_command"].endswith("--device 1")
