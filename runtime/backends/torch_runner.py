"""The torch reference backend: runs fakewatch checkpoints exactly as training left them (no export in between).

torch is imported only inside functions; the runtime works without it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.core.contract import ContractError, ModelSpec
from fakewatch.runtime.backends.base import BackendError, Runner


def read_checkpoint_spec(path: str | Path) -> ModelSpec:
    """The contract stored in a fakewatch checkpoint (weights_only load; plain state dicts have none)."""
    try:
        import torch
    except ImportError:
        raise BackendError(f"{path} is a torch checkpoint; reading it needs torch (pip install 'fakewatch[export]') "
                           f"- or export it once with `fakewatch export onnx {path}` and run the .onnx") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ContractError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or "fakewatch_spec" not in obj:
        raise ContractError(f"checkpoint {path} has no fakewatch contract (a plain timm/EfficientNet-PyTorch state "
                            f"dict); export it with `fakewatch export onnx {path} --variant NAME` first")
    return ModelSpec.from_dict(obj["fakewatch_spec"], where=f"checkpoint {path}")


class TorchRunner(Runner):
    """Options: ``device`` cpu|cuda (default cpu), ``threads`` (torch intra-op threads, 0 = torch default)."""

    name = "torch"

    def __init__(self, artifact, spec, *, device: str = "cpu", threads: int = 0, **options: Any) -> None:
        super().__init__(artifact, spec, device=device, threads=threads, **options)
        self.device = device
        self.threads = int(threads)
        self._model = None
        self._torch = None

    def activate_impl(self) -> None:
        try:
            import torch
        except ImportError:
            raise BackendError("the torch backend needs torch (pip install 'fakewatch[export]')") from None
        from fakewatch.core.checkpoint import load_checkpoint

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("torch backend: --device cuda asked but torch sees no CUDA device; use --device cpu")
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        model, spec, _notes = load_checkpoint(self.artifact)
        if (spec.input_size, spec.num_outputs) != (self.spec.input_size, self.spec.num_outputs):
            raise BackendError(f"{self.artifact.name}: checkpoint contract {spec.input_size}/{spec.num_outputs} "
                               f"differs from the contract read before ({self.spec.input_size}/"
                               f"{self.spec.num_outputs}); its sidecar is stale - delete or regenerate it")
        self._torch = torch
        self._model = model.to(self.device).eval()

    def infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            y = self._model(x)
            # .cpu() synchronises, so the base class's wall clock covers H2D + compute + D2H like ORT's does
            return y.float().cpu().numpy().reshape(batch.shape[0], -1), None

    def deactivate_impl(self) -> None:
        self._model = None
