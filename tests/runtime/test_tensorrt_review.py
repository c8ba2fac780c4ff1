"""The GPU-path review items, CPU side: kernel compile failure falls back to host preprocessing (once, with the
reason), staging buffers free what they replace, and the pipeline follows what the runner decided in activate."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.runtime.backends import load_runner
from fakewatch.runtime.cuda_preprocess import PycudaPreprocessor, compile_or_fallback, grown_capacity
from fakewatch.runtime.pipeline import Pipeline, WatchConfig
from fakewatch.streams import open_source

from .conftest import write_video


def test_compile_failure_is_one_reason_not_a_traceback():
    def no_nvcc():
        raise FileNotFoundError("[Errno 2] No such file or directory: 'nvcc'\nmore lines")

    pre, why = compile_or_fallback(no_nvcc)
    assert pre is None and "FileNotFoundError" in why and "'nvcc'" in why and "more lines" not in why
    assert "preprocessed on the CPU instead" in why and "nvcc on PATH" in why
    ok, why = compile_or_fallback(lambda: "compiled")
    assert ok == "compiled" and why is None


class _Alloc:
    def __init__(self, log, n):
        self.log, self.n = log, n

    def free(self):
        self.log.append(("free", self.n))


class _FakeCuda:
    """Just enough of pycuda.driver for _ensure: records allocations and frees."""

    def __init__(self):
        self.log = []

    def pagelocked_empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def mem_alloc(self, n):
        self.log.append(("alloc", int(n)))
        return _Alloc(self.log, int(n))


def test_staging_buffers_free_the_allocation_they_replace():
    pre = PycudaPreprocessor.__new__(PycudaPreprocessor)      # no pycuda here: only the buffer logic runs
    pre._cuda = cuda = _FakeCuda()
    pre._host = pre._dev = pre._table_host = pre._table_dev = None
    pre._dev_bytes = pre._table_rows = 0
    pre._ensure(1000, 2)
    pre._ensure(5 << 20, 20)        # frames got bigger, more faces: both buffers grow
    pre._ensure(3 << 20, 4)         # smaller again: reused, nothing allocated
    allocs = [n for op, n in cuda.log if op == "alloc"]
    frees = [n for op, n in cuda.log if op == "free"]
    assert allocs == [1 << 20, 8 * 64, 8 << 20, 32 * 64] and frees == [1 << 20, 8 * 64]
    assert [grown_capacity(n, 8) for n in (1, 8, 9, 100)] == [8, 8, 16, 128]


class KernelLessGpuRunner:
    """A runner that advertises device input until activate finds it cannot compile the kernel (like the TensorRT
    runner without nvcc); infers on the host through a real ONNX runner."""

    def __init__(self, inner):
        self.inner, self.accepts_device_input = inner, True
        self.host_calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def activate(self):
        self.inner.activate()
        self.accepts_device_input = False
        self.preprocess_fallback = "fused CUDA preprocessing is off (no nvcc)"

    def infer(self, batch):
        self.host_calls += 1
        return self.inner.infer(batch)

    def infer_prepared(self, n):
        raise AssertionError("the pipeline must not use the device path after the fallback")


def test_pipeline_follows_the_fallback_decided_in_activate(tmp_path, bright_onnx):
    video = write_video(tmp_path / "v.mp4", frames=12)
    runner = KernelLessGpuRunner(load_runner(bright_onnx))
    s = Pipeline([open_source(str(video), pace=False)], runner, WatchConfig(status_interval_s=0)).run()
    (st,) = s.streams.values()
    assert st["frames"] == 12 and runner.host_calls >= 1
    assert "preprocess" in s.overall["latency_ms"]


@pytest.mark.gpu
def test_tensorrt_runner_compiles_the_kernel_in_activate(tiny_onnx, tmp_path):
    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda.driver")
    from fakewatch.export.engine import BuildOptions, parse_profile
    from fakewatch.export.engine_build import build_engine

    report = build_engine(tiny_onnx, tmp_path / "t.engine", BuildOptions(precision="fp32",
                                                                          profile=parse_profile("1:2:4")))
    with load_runner(report.engine) as runner:
        # compiled before any batch: either the kernel is there, or the reason is, never neither
        assert (runner._objs.get("pre") is not None) != bool(runner.preprocess_fallback)
        assert runner.accepts_device_input == (runner._objs.get("pre") is not None)
