"""TensorRT facts shared by the engine builder (``fakewatch engine``) and the TensorRT runner.

Pure Python, no TensorRT import: version parsing, the compute-capability spelling, the plan hash and the check an
engine's sidecar gets against the running TensorRT and GPU before it is deserialized.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

TENSORRT_MISSING = ("TensorRT is not installed: pip install 'fakewatch[tensorrt]' (x86_64/SBSA with an NVIDIA "
                    "driver), or on a Jetson use JetPack's TensorRT (sudo apt install python3-libnvinfer) plus "
                    "pycuda; see docs/jetson.md")


class EngineCompatError(RuntimeError):
    """An engine was built for another TensorRT version or GPU architecture than the one running."""


def parse_trt_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` -> ``(10, 3, 0, 30)``; raises ValueError for anything that is not dotted integers."""
    parts = str(text).strip().split(".")
    try:
        nums = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"not a TensorRT version: {text!r} (expected e.g. 10.3.0.30)") from None
    if not nums or nums[0] <= 0:
        raise ValueError(f"not a TensorRT version: {text!r}")
    return nums


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def format_cc(cc: Any) -> str:
    """(8, 7) / "8.7" / "sm_87" -> "8.7"."""
    if isinstance(cc, (tuple, list)):
        return f"{int(cc[0])}.{int(cc[1])}"
    text = str(cc).strip().lower().removeprefix("sm_")
    return text if "." in text else f"{text[:-1]}.{text[-1]}"


def check_engine_compat(doc: Mapping[str, Any], running_trt_version: str, gpu_name: str, compute_capability: Any,
                        engine_path: str | Path = "engine") -> list[str]:
    """Compare an engine's sidecar with the running TensorRT and GPU before deserializing it.

    Raises :class:`EngineCompatError` with one message naming both sides and the exact rebuild command; returns
    warnings for differences TensorRT tolerates (another GPU model of the same architecture).
    """
    info = doc.get("tensorrt") if isinstance(doc, Mapping) else None
    if not isinstance(info, Mapping) or not {"version", "compute_capability"} <= set(info):
        raise EngineCompatError(f"{engine_path}: its sidecar has no 'tensorrt' section with version and "
                                f"compute_capability; rebuild it with `fakewatch engine MODEL.onnx -o {engine_path}`")
    built_v, run_v = str(info["version"]), str(running_trt_version)
    built_cc, run_cc = format_cc(info["compute_capability"]), format_cc(compute_capability)
    bv, rv = parse_trt_version(built_v), parse_trt_version(run_v)
    problems = []
    if info.get("version_compatible"):
        if rv[0] != bv[0] or rv < bv:
            problems.append(f"a version-compatible engine from TensorRT {built_v} needs TensorRT "
                            f"{bv[0]}.x >= {built_v}")
    elif rv[:3] != bv[:3]:
        problems.append("engines only load with the TensorRT version that built them")
    if run_cc != built_cc:
        problems.append("engines only run on the GPU architecture (compute capability) they were built for")
    if problems:
        cmd = info.get("rebuild_command") or f"fakewatch engine MODEL.onnx -o {engine_path}"
        raise EngineCompatError(
            f"{engine_path} was built with TensorRT {built_v} for {info.get('gpu_name', '?')} (compute capability "
            f"{built_cc}); this machine runs TensorRT {run_v} on {gpu_name} (compute capability {run_cc}): "
            f"{'; '.join(problems)}. Rebuild it here: {cmd}")
    warnings = []
    if info.get("gpu_name") and str(info["gpu_name"]) != str(gpu_name):
        warnings.append(f"{engine_path} was tuned on {info['gpu_name']}, running on {gpu_name} (same compute "
                        f"capability {run_cc}): it works, but rebuild here for best speed")
    return warnings


def check_plan_intact(engine_path: str | Path, doc: Mapping[str, Any]) -> None:
    """Refuse a plan whose bytes are not the ones its sidecar recorded (truncated copy, interrupted build, another
    plan renamed over it): size first (free), then sha256. Sidecars from before ``plan_sha256`` pass unchecked."""
    info = doc.get("tensorrt") if isinstance(doc, Mapping) else None
    if not isinstance(info, Mapping) or "plan_sha256" not in info:
        return
    path = Path(engine_path)
    cmd = info.get("rebuild_command") or f"fakewatch engine MODEL.onnx -o {path}"
    size, want = path.stat().st_size, info.get("plan_bytes")
    if want is not None and size != int(want):
        raise EngineCompatError(f"{path} is {size} bytes but its sidecar recorded {want}: the plan is truncated or "
                                f"was replaced after the build. Rebuild it: {cmd}")
    if file_sha256(path) != info["plan_sha256"]:
        raise EngineCompatError(f"{path} does not match the sha256 its sidecar recorded: the plan is corrupt or was "
                                f"replaced after the build. Rebuild it: {cmd}")


def plan_intact(engine_path: str | Path) -> bool:
    """True when ``engine_path`` and its sidecar exist and the plan matches the recorded size and sha256 (for
    caches deciding whether to reuse a built engine)."""
    import json

    from fakewatch.core.contract import sidecar_path

    path = Path(engine_path)
    side = sidecar_path(path)
    if not (path.is_file() and side.is_file()):
        return False
    try:
        doc = json.loads(side.read_text())
        if "plan_sha256" not in (doc.get("tensorrt") or {}):
            return False
        check_plan_intact(path, doc)
    except (OSError, ValueError, EngineCompatError):
        return False
    return True
