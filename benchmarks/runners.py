"""Get a :class:`fakewatch.runtime.backends.base.Runner` for a (artifact, backend) pair, or the reason there is none.

The project's backend table (``fakewatch.runtime.backends.load_runner``) is used whenever it exists, so the benchmark
times the same runners ``fakewatch watch`` uses. Until that module lands, two minimal fallback runners (ONNX Runtime
session, torch eager) implement the same Runner interface; every row records which implementation it used
(``runner_impl``). TensorRT has no fallback: without the project's TensorRT runner and the ``tensorrt`` package the row
is skipped with the reason.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.benchmarks.artifacts import Unavailable
from fakewatch.core.contract import load_spec
from fakewatch.runtime.backends.base import BackendError, Runner

BACKENDS = ("onnxruntime", "openvino", "torch", "tensorrt")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def project_load_runner():
    """``fakewatch.runtime.backends.load_runner`` or None while the runtime package does not provide it yet."""
    if not _has("fakewatch.runtime.backends"):
        return None
    mod = importlib.import_module("fakewatch.runtime.backends")
    return getattr(mod, "load_runner", None)


def backend_unavailable_reason(backend: str) -> str | None:
    """Why ``backend`` cannot run on this machine at all (None = it can)."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})"
    if backend == "onnxruntime" and not _has("onnxruntime"):
        return "onnxruntime: not installed"
    if backend == "openvino" and not _has("openvino"):
        return "openvino: not installed (pip install 'fakewatch[openvino]')"
    if backend == "torch" and not _has("torch"):
        return "torch: not installed (pip install 'fakewatch[export]')"
    if backend == "tensorrt":
        if not _has("tensorrt"):
            return "tensorrt: not installed (needs an NVIDIA GPU/Jetson with TensorRT >= 10)"
        if not _has("fakewatch.runtime.backends.tensorrt_runner"):
            return "tensorrt: fakewatch.runtime.backends.tensorrt_runner not available yet"
    return None


def open_runner(artifact: Path, backend: str, **options: Any) -> tuple[Runner, str]:
    """An (inactive) runner and the name of its implementation. Raises :class:`Unavailable` with the skip reason."""
    reason = backend_unavailable_reason(backend)
    if reason:
        raise Unavailable(reason)
    load_runner = project_load_runner()
    if load_runner is not None:
        try:
            return load_runner(artifact, backend=backend, **options), "fakewatch.runtime.backends"
        except (ImportError, BackendError) as exc:
            raise Unavailable(f"{backend}: {exc}") from None
    spec = load_spec(artifact)
    if backend == "onnxruntime":
        return _OrtFallback(artifact, spec, **options), "benchmarks fallback (onnxruntime session)"
    if backend == "torch":
        return _TorchFallback(artifact, spec, **options), "benchmarks fallback (torch eager)"
    raise Unavailable(f"{backend}: fakewatch.runtime.backends.load_runner not available yet")


class _OrtFallback(Runner):
    name = "onnxruntime"

    def activate_impl(self) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(self.artifact), so, providers=["CPUExecutionProvider"])

    def infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        out = self._session.run([self.spec.output_name], {self.spec.input_name: batch})[0]
        return out, None

    def deactivate_impl(self) -> None:
        self._session = None


class _TorchFallback(Runner):
    name = "torch"

    def activate_impl(self) -> None:
        from fakewatch.core.checkpoint import load_checkpoint

        self._model, _spec, _notes = load_checkpoint(self.artifact)
        self._model.eval()

    def infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        import torch

        with torch.inference_mode():
            out = self._model(torch.from_numpy(batch)).numpy()
        return out, None

    def deactivate_impl(self) -> None:
        self._model = None
