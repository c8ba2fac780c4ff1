"""One runner interface for every backend (Polygraphy-style): activate -> infer -> deactivate.

Heavy libraries (onnxruntime sessions, torch, tensorrt, pycuda) are imported and the GPU touched only inside
``activate``; constructing a runner is cheap and side-effect free. Each ``infer`` measures its own time.
"""
from __future__ import annotations

import abc
import time
from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.core.contract import ModelSpec


class BackendError(RuntimeError):
    """A backend could not be activated or run (missing library, wrong model, wrong device)."""


class Runner(abc.ABC):
    #: registry key, e.g. "onnxruntime"
    name: str = "runner"

    def __init__(self, artifact: str | Path, spec: ModelSpec, **options: Any) -> None:
        self.artifact = Path(artifact)
        self.spec = spec
        self.options = options
        self.is_active = False
        self.last_inference_ms: float = float("nan")
        # largest batch the backend accepts (None = unbounded); TensorRT sets it from the profile
        self.max_batch: int | None = None

    # -- lifecycle -----------------------------------------------------------------
    def activate(self) -> "Runner":
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            try:
                self.deactivate_impl()
            finally:
                self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # -- inference -------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (N,3,H,W float32, the contract's layout). Returns (N, num_outputs) float32 logits."""
        if not self.is_active:
            raise BackendError(f"{self.name} runner for {self.artifact.name} is not active; call activate() "
                               f"or use it as a context manager")
        expected = (3, *self.spec.input_size)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise BackendError(f"{self.artifact.name} expects input [N, {', '.join(map(str, expected))}], "
                               f"got {list(batch.shape)}")
        if self.max_batch is not None and batch.shape[0] > self.max_batch:
            raise BackendError(f"batch {batch.shape[0]} exceeds this {self.name} model's max batch {self.max_batch}")
        t0 = time.perf_counter()
        out, measured_ms = self.infer_impl(batch)
        self.last_inference_ms = measured_ms if measured_ms is not None else (time.perf_counter() - t0) * 1e3
        return out

    # -- to implement ----------------------------------------------------------------
    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    @abc.abstractmethod
    def infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Return (logits, measured_ms or None). Backends with device timers (CUDA events) return their own."""

    @abc.abstractmethod
    def deactivate_impl(self) -> None: ...


class BackendUnavailable(BackendError):
    """A remote backend (Triton) is unreachable for now; the batch is lost but the runner retries by itself.

    The pipeline counts the batch's frames as dropped and keeps running; every other BackendError stops it.
    """
