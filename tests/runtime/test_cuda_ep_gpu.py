"""GPU without TensorRT: ONNX Runtime's CUDA execution provider through the runner and the pipeline (skipped without
a CUDA GPU, or when the installed onnxruntime has no CUDA provider)."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.runtime.backends import load_runner
from fakewatch.runtime.pipeline import Pipeline, WatchConfig, runs_on_gpu
from fakewatch.streams import open_source

from .conftest import write_video

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda_ep():
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu)")


def test_cuda_provider_matches_cpu(cuda_ep, bright_onnx):
    x = np.random.default_rng(0).uniform(0, 1, (5, 3, 32, 32)).astype(np.float32)
    with load_runner(bright_onnx, device="cuda") as gpu, load_runner(bright_onnx, device="cpu") as cpu:
        assert gpu.providers[0] == "CUDAExecutionProvider" and runs_on_gpu(gpu)
        for n in (1, 5, 2):
            assert np.abs(gpu.infer(x[:n]) - cpu.infer(x[:n])).max() < 1e-4


def test_pipeline_on_the_cuda_provider(cuda_ep, bright_onnx, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=30, level=lambda i: 40 if i < 15 else 230)
    s = Pipeline([open_source(str(video), pace=False)], load_runner(bright_onnx, device="cuda"),
                 WatchConfig(status_interval_s=0)).run()
    (st,) = s.streams.values()
    assert st["frames"] == 30 and s.backend == "onnxruntime"
