"""Backends behind one :class:`~fakewatch.runtime.backends.base.Runner` interface, chosen from the artifact's *content*.

Two tables drive everything (no if/elif on file suffixes):

* :data:`ARTIFACT_TYPES` - how to recognise an artifact (ONNX protobuf, torch checkpoint zip, TensorRT plan with a
  sidecar that has a ``"tensorrt"`` section), which backend runs it by default and which others can.
* :data:`BACKENDS` - backend name -> ``"module:Class"``, imported only when picked, so ``import runtime`` never
  pulls torch or tensorrt.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fakewatch.core.contract import ContractError, ModelSpec, load_spec, read_sidecar, read_sidecar_doc, sidecar_path
from fakewatch.runtime.backends.base import BackendError, BackendUnavailable, Runner

BACKENDS: dict[str, str] = {
    "onnxruntime": "fakewatch.runtime.backends.onnxruntime_runner:OnnxRuntimeRunner",
    "torch": "fakewatch.runtime.backends.torch_runner:TorchRunner",
    "tensorrt": "fakewatch.runtime.backends.tensorrt_runner:TensorRTRunner",
    "openvino": "fakewatch.runtime.backends.openvino_runner:OpenVINORunner",
    # remote: no artifact here, the contract comes from the server (TritonRunner.connect, --triton-url)
    "triton": "fakewatch.runtime.backends.triton_runner:TritonRunner",
}

#: backend -> how to get it (each backend's name is also the module it needs)
_INSTALL: dict[str, str] = {"onnxruntime": "pip install fakewatch", "torch": "pip install 'fakewatch[export]'",
                            "tensorrt": "TensorRT >= 10 and pip install 'fakewatch[tensorrt]'",
                            "openvino": "pip install 'fakewatch[openvino]'",
                            "triton": "pip install 'fakewatch[triton]'"}


# ----------------------------------------------------------------------------- content sniffing
def _head(path: Path, n: int = 16) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _has_tensorrt_sidecar(path: Path) -> bool:
    # A TensorRT plan is opaque bytes (kept header-free so trtexec/DeepStream/Triton load it); its sidecar says so.
    if not sidecar_path(path).is_file():
        return False
    try:
        return "tensorrt" in read_sidecar_doc(path)
    except ContractError:
        return False


def _is_onnx(path: Path) -> bool:
    # ModelProto serialisers write field 1 (ir_version, varint) first: tag byte 0x08, then a small version number.
    head = _head(path, 2)
    return len(head) == 2 and head[0] == 0x08 and 0 < head[1] < 64


def _is_torch_zip(path: Path) -> bool:
    # torch.save (>= 1.6) writes a zip whose entries live under "<name>/" with a "data.pkl" inside.
    if _head(path, 4) != b"PK\x03\x04":
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any(name.endswith("data.pkl") for name in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _torch_spec(path: Path) -> ModelSpec:
    if sidecar_path(path).is_file():
        return read_sidecar(path)
    from fakewatch.runtime.backends.torch_runner import (
        read_checkpoint_spec,  # needs torch, imported only for checkpoints
    )

    return read_checkpoint_spec(path)


def _tensorrt_spec(path: Path) -> ModelSpec:
    return read_sidecar(path)


@dataclass(frozen=True)
class ArtifactType:
    name: str
    matches: Callable[[Path], bool]
    backends: tuple[str, ...]          # first = default
    read_spec: Callable[[Path], ModelSpec]
    description: str


#: Checked in order; the TensorRT row first because a plan's bytes prove nothing, its sidecar does.
ARTIFACT_TYPES: tuple[ArtifactType, ...] = (
    ArtifactType("tensorrt-plan", _has_tensorrt_sidecar, ("tensorrt",), _tensorrt_spec,
                 "TensorRT engine plan with a fakewatch sidecar containing a 'tensorrt' section"),
    ArtifactType("onnx", _is_onnx, ("onnxruntime", "openvino"), load_spec, "ONNX model (protobuf)"),
    ArtifactType("torch-checkpoint", _is_torch_zip, ("torch",), _torch_spec,
                 "fakewatch torch checkpoint (torch.save zip)"),
)


def detect_artifact(artifact: str | Path) -> ArtifactType:
    """The :class:`ArtifactType` of a file, from its content and sidecar. Raises with advice when unknown."""
    path = Path(artifact)
    if not path.exists():
        raise FileNotFoundError(f"model {path} does not exist; pass an exported model (.onnx, .engine with its "
                                f"sidecar, or a fakewatch checkpoint)")
    if not path.is_file():
        raise ValueError(f"model {path} is a directory, not a model file")
    if path.stat().st_size == 0:
        raise ValueError(f"model {path} is empty (0 bytes); export it again")
    for kind in ARTIFACT_TYPES:
        if kind.matches(path):
            return kind
    known = "; ".join(f"{k.name}: {k.description}" for k in ARTIFACT_TYPES)
    raise ValueError(f"model {path}: unrecognised or corrupt file (first bytes {_head(path, 8)!r}). fakewatch runs "
                     f"{known}. Export one with `fakewatch export onnx`.")


def runner_class(backend: str) -> type[Runner]:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    module_name, cls_name = BACKENDS[backend].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f"backend {backend!r} is not available here ({exc}); use another --backend or install "
                           f"what it needs ({_INSTALL.get(backend, 'pip install fakewatch')})") from None
    return getattr(module, cls_name)


def _installed(backend: str) -> bool:
    """Whether the backend's library is importable here (checked without importing it)."""
    try:
        return importlib.util.find_spec(backend) is not None
    except (ImportError, ValueError):
        return False


def default_backend(kind: ArtifactType, spec: ModelSpec) -> str:
    """The backend an artifact runs on unless one is asked for.

    An INT8 artifact records the backend its quantization recipe was tuned for (``provenance.quantization.backend``,
    e.g. ``openvino``); that one is used when it can run this artifact type and is installed here. Otherwise the
    type's first backend, with a note on stderr when the tuned one is missing (the artifact still runs, slower).
    """
    tuned = (spec.provenance.get("quantization") or {}).get("backend")
    if tuned in kind.backends and tuned != kind.backends[0]:
        if _installed(tuned):
            return tuned
        print(f"note: {spec.variant} artifact was quantized for the {tuned} backend, which is not installed here; "
              f"running it on {kind.backends[0]} (slower; {_INSTALL.get(tuned, tuned)} to use {tuned})",
              file=sys.stderr)
    return kind.backends[0]


def artifact_backend(artifact: str | Path) -> str:
    """:func:`default_backend` for a model file (its type and contract read from the file and its sidecar)."""
    path = Path(artifact)
    kind = detect_artifact(path)
    try:
        return default_backend(kind, kind.read_spec(path))
    except ContractError as exc:
        raise ValueError(f"model {path}: {exc}") from None


def load_runner(artifact: str | Path, backend: str | None = None, **opts: Any) -> Runner:
    """A (not yet activated) runner for ``artifact``; backend from the artifact (:func:`default_backend`) unless
    given."""
    path = Path(artifact)
    kind = detect_artifact(path)
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    if backend is not None and backend not in kind.backends:
        raise ValueError(f"model {path.name} is a {kind.name} ({kind.description}); backend {backend!r} cannot run "
                         f"it (use {' or '.join(kind.backends)}, or convert the model: `fakewatch export onnx` for "
                         f"checkpoints, a TensorRT build for ONNX)")
    try:
        spec = kind.read_spec(path)
    except ContractError as exc:
        raise ValueError(f"model {path}: {exc}") from None
    if backend is None:
        backend = default_backend(kind, spec)
    return runner_class(backend)(path, spec, **opts)


__all__ = ["ARTIFACT_TYPES", "BACKENDS", "ArtifactType", "BackendError", "BackendUnavailable", "Runner", "artifact_backend",
           "default_backend", "detect_artifact", "load_runner", "runner_class"]
