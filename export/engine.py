"""TensorRT engine building: plan in plain Python, one thin function that talks to TensorRT.

Everything that decides *what* to build is pure and CPU-tested: batch-profile parsing, ONNX precision inspection
(Q/DQ nodes, symmetric zero points, FP16 tensors), the version-keyed flag table, parser-error formatting, the JSON
sidecar and the compatibility check an engine gets before it is loaded. :func:`build_engine` (in
:mod:`fakewatch.export.engine_build`) only executes a :class:`BuildPlan` with the TensorRT Python API.

TensorRT 10 -> 11 (NVIDIA's 10.x-to-11.x migration guide):
* 11 removes ``BuilderFlag.FP16/INT8/BF16/FP8/INT4/FP4``, ``OBEY/PREFER_PRECISION_CONSTRAINTS``, ``DIRECT_IO`` and
  ``IBuilderConfig.int8_calibrator``: networks are always strongly typed, precision comes from the ONNX (FP16 via
  casts/weights, e.g. ModelOpt AutoCast; INT8 via Q/DQ). 10 still takes the flags. :data:`TRT_CAPABILITIES`
  holds both rows and :func:`make_build_plan` never emits a flag the running major removed.
* Implicit INT8 calibration is deprecated since 10.1 and gone in 11, so fakewatch builds INT8 only from a Q/DQ
  ONNX on every version; Q/DQ must be symmetric (zero point 0, signed int8).
* NVIDIA's 11.3/11.4 notes list JetPack and DLA as not supported by 11.x yet: Jetson builds use JetPack's 10.x.

The engine file is a plain plan (no header bytes) so trtexec, DeepStream and Triton load it too; metadata lives in
``<engine>.json`` (contract + a ``"tensorrt"`` section).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from fakewatch.core.contract import ModelSpec, write_sidecar

# shared with the runner (fakewatch.runtime.backends.tensorrt_runner): re-exported for the engine CLI and tests
from fakewatch.core.tensorrt import (
    TENSORRT_MISSING,
    EngineCompatError,
    check_engine_compat,
    file_sha256,
    format_cc,
    parse_trt_version,
)

PRECISIONS = ("fp32", "fp16", "int8", "best")
MAX_PROFILE_BATCH = 1024
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16
_UINT8 = 2     # onnx.TensorProto.UINT8


class EngineBuildError(ValueError):
    """The requested engine cannot be built (bad option, unsupported model, parser/builder failure)."""


# ----------------------------------------------------------------------------- batch profile
@dataclass(frozen=True)
class BatchProfile:
    min: int
    opt: int
    max: int

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"

    def shapes(self, spec: ModelSpec) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes at the contract's fixed H x W (only the batch is dynamic)."""
        return tuple(spec.input_shape(b) for b in (self.min, self.opt, self.max))  # type: ignore[return-value]


def parse_profile(text: str | int) -> BatchProfile:
    """``"1:4:8"`` -> BatchProfile(1, 4, 8); a single number N means N:N:N (a fixed batch)."""
    raw = str(text).strip()
    parts = raw.split(":")
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise EngineBuildError(f"--batch {raw!r}: expected MIN:OPT:MAX (e.g. 1:4:8) or one number")
    try:
        lo, opt, hi = (int(p) for p in parts)
    except ValueError:
        raise EngineBuildError(f"--batch {raw!r}: MIN, OPT and MAX must be whole numbers, e.g. 1:4:8") from None
    if not 1 <= lo <= opt <= hi:
        raise EngineBuildError(f"--batch {raw!r}: need 1 <= MIN <= OPT <= MAX (OPT is the batch TensorRT tunes for)")
    if hi > MAX_PROFILE_BATCH:
        raise EngineBuildError(f"--batch {raw!r}: MAX {hi} is above {MAX_PROFILE_BATCH}; the runtime batches one "
                               f"frame per stream, so MAX = number of streams (x faces) is enough")
    return BatchProfile(lo, opt, hi)


# ----------------------------------------------------------------------------- ONNX precision inspection
@dataclass(frozen=True)
class OnnxPrecisionInfo:
    quantize_nodes: int = 0
    dequantize_nodes: int = 0
    fp16_tensors: int = 0                      # FP16 initializers, graph inputs and Cast-to-FP16 nodes
    asymmetric_nodes: tuple[str, ...] = ()     # Q/DQ nodes with a non-zero zero point (TensorRT refuses them)
    unsigned_nodes: tuple[str, ...] = ()       # Q/DQ nodes with uint8 zero points (TensorRT needs signed int8)

    @property
    def has_qdq(self) -> bool:
        return self.quantize_nodes + self.dequantize_nodes > 0

    @property
    def has_fp16(self) -> bool:
        return self.fp16_tensors > 0


def inspect_onnx_precision(model: Any) -> OnnxPrecisionInfo:
    """Count Q/DQ nodes (default and com.microsoft domains), check their zero points, count FP16 tensors."""
    import onnx  # lazy: the runtime never needs it for engines
    from onnx import numpy_helper

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model), load_external_data=False)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in graph.node
              if n.op_type == "Constant" and n.output and n.attribute and n.attribute[0].name == "value"}
    q = dq = fp16 = 0
    asym, unsigned = [], []
    for node in graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == _FLOAT16 for a in node.attribute):
            fp16 += 1
        if node.op_type not in QDQ_OPS:
            continue
        q += node.op_type == "QuantizeLinear"
        dq += node.op_type == "DequantizeLinear"
        label = node.name or f"{node.op_type}#{q + dq}"
        if len(node.input) >= 3 and node.input[2]:
            zp = inits.get(node.input[2]) or consts.get(node.input[2])
            if zp is not None:
                if zp.data_type == _UINT8:
                    unsigned.append(label)
                if numpy_helper.to_array(zp).any():
                    asym.append(label)
    fp16 += sum(t.data_type == _FLOAT16 for t in graph.initializer)
    fp16 += sum(i.type.tensor_type.elem_type == _FLOAT16 for i in graph.input)
    return OnnxPrecisionInfo(q, dq, fp16, tuple(asym), tuple(unsigned))


# ----------------------------------------------------------------------------- version -> flags table
@dataclass(frozen=True)
class TrtCapabilities:
    major: int
    precision_flags: Mapping[str, tuple[str, ...]]   # --precision -> BuilderFlag member names to set
    strongly_typed: bool                             # precision comes only from the ONNX
    removed_flags: frozenset[str]                    # never set these on this major
    dla: bool                                        # DLA builds supported by this major (per NVIDIA's notes)


_REMOVED_IN_11 = frozenset({"FP16", "INT8", "BF16", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                            "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO"})

TRT_CAPABILITIES: dict[int, TrtCapabilities] = {
    # int8 = INT8 + FP16: the layers a Q/DQ recipe keeps float (stem, head) run in FP16, not FP32 (NVIDIA's
    # explicit-quantization advice); "best" on 10 is the same pair and needs Q/DQ (nothing else calibrates INT8)
    10: TrtCapabilities(10, {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16"), "best": ("FP16", "INT8")},
                        strongly_typed=False, removed_flags=frozenset(), dla=True),
    11: TrtCapabilities(11, {"fp32": (), "fp16": (), "int8": (), "best": ()},
                        strongly_typed=True, removed_flags=_REMOVED_IN_11, dla=False),
}


def capabilities_for(version: str | Sequence[int]) -> TrtCapabilities:
    nums = parse_trt_version(version) if isinstance(version, str) else tuple(version)
    if nums[0] < min(TRT_CAPABILITIES):
        raise EngineBuildError(f"TensorRT {'.'.join(map(str, nums))} is too old: fakewatch uses the TensorRT 10 "
                               f"name-based API (execute_async_v3); install TensorRT >= 10 (JetPack 6.x)")
    return TRT_CAPABILITIES[min(nums[0], max(TRT_CAPABILITIES))]  # newer majors: strongly typed like 11


# ----------------------------------------------------------------------------- options -> plan
@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp16"
    profile: BatchProfile = BatchProfile(1, 4, 8)
    workspace_mb: int = 2048
    timing_cache: Path | None = None
    dla_core: int | None = None
    opt_level: int = 3
    verbose_log: Path | None = None
    version_compatible: bool = False
    device: int = 0


@dataclass(frozen=True)
class BuildPlan:
    trt_version: str
    flags: tuple[str, ...]            # BuilderFlag member names, in the order they are set
    strongly_typed: bool
    precision: str                    # what goes into the engine's contract (fp32|fp16|int8)
    workspace_bytes: int
    opt_level: int
    dla_core: int | None
    notes: tuple[str, ...] = field(default_factory=tuple)


def check_precision_request(precision: str, info: OnnxPrecisionInfo) -> None:
    """Version-independent refusals, checked before TensorRT is even imported."""
    if precision not in PRECISIONS:
        raise EngineBuildError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and not info.has_qdq:
        raise EngineBuildError(
            "--precision int8 needs a quantized (Q/DQ) ONNX, and this model has no QuantizeLinear/DequantizeLinear "
            "nodes. Implicit INT8 calibration is deprecated since TensorRT 10.1 and removed in 11, so fakewatch "
            "only builds INT8 from explicit quantization: quantize the ONNX with the tensorrt recipe first "
            "(onnxruntime quantize_static, QDQ, QInt8, symmetric) or use --precision fp16")
    if info.has_qdq and precision in ("fp32", "fp16"):
        raise EngineBuildError(f"this ONNX is quantized ({info.quantize_nodes} QuantizeLinear, "
                               f"{info.dequantize_nodes} DequantizeLinear nodes): build it with --precision int8 "
                               f"or best, or build the unquantized ONNX for {precision}")
    if info.has_qdq and info.asymmetric_nodes:
        raise EngineBuildError(f"TensorRT only supports symmetric quantization (zero point 0), but "
                               f"{len(info.asymmetric_nodes)} Q/DQ node(s) have non-zero zero points, e.g. "
                               f"{', '.join(info.asymmetric_nodes[:3])}; re-quantize with "
                               f"extra_options={{'ActivationSymmetric': True, 'WeightSymmetric': True}}")
    if info.has_qdq and info.unsigned_nodes:
        raise EngineBuildError(f"{len(info.unsigned_nodes)} Q/DQ node(s) use uint8 (QUInt8), e.g. "
                               f"{', '.join(info.unsigned_nodes[:3])}; TensorRT needs signed int8: re-quantize "
                               f"with activation_type=weight_type=QuantType.QInt8")


def make_build_plan(trt_version: str, options: BuildOptions, info: OnnxPrecisionInfo) -> BuildPlan:
    """Which BuilderFlags to set for this TensorRT version, or a clear refusal."""
    check_precision_request(options.precision, info)
    caps = capabilities_for(trt_version)
    if not 0 <= options.opt_level <= 5:
        raise EngineBuildError(f"--opt-level {options.opt_level}: TensorRT's builder optimization level is 0-5 "
                               f"(default 3; 5 searches longest)")
    if options.workspace_mb <= 0:
        raise EngineBuildError(f"--workspace-mb {options.workspace_mb}: must be a positive number of MiB")
    notes: list[str] = []
    p = options.precision
    if caps.strongly_typed:
        # TensorRT 11+: no precision flags exist; the ONNX's own types decide.
        if p == "fp16" and not info.has_fp16:
            raise EngineBuildError(
                f"TensorRT {trt_version} builds strongly typed networks (BuilderFlag.FP16 was removed in 11): an "
                f"FP32 ONNX gives an FP32 engine. Convert it to FP16 first, e.g. `python -m modelopt.onnx.autocast "
                f"--onnx_path model.onnx --output_path model_fp16.onnx` (keep I/O types), then build that ONNX")
        if p == "fp32" and info.has_fp16:
            raise EngineBuildError(f"this ONNX carries FP16 tensors and TensorRT {trt_version} is strongly typed, "
                                   f"so the engine would be FP16: pass --precision fp16 (or best)")
        precision = "int8" if info.has_qdq else ("fp16" if info.has_fp16 else "fp32")
        notes.append(f"TensorRT {caps.major}.x: strongly typed network, precision {precision} taken from the ONNX")
    else:
        if p == "best" and not info.has_qdq:
            raise EngineBuildError(
                f"--precision best on TensorRT {trt_version} sets INT8, but this ONNX has no Q/DQ nodes and "
                f"fakewatch does no implicit INT8 calibration (deprecated in 10.1, removed in 11): build it with "
                f"--precision fp16, or quantize it first (`fakewatch export quantize MODEL.onnx --target tensorrt`)")
        precision = {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}.get(p) or "int8"
        if p == "int8":
            notes.append("INT8 + FP16: layers the Q/DQ recipe keeps float run in FP16")
        if p == "fp32" and info.has_fp16:
            notes.append("the ONNX has FP16 tensors; without BuilderFlag.FP16 TensorRT 10 computes them in FP32")
    flags = list(caps.precision_flags[p])
    if options.dla_core is not None:
        if not caps.dla:
            raise EngineBuildError(f"--dla-core: NVIDIA lists DLA (and JetPack) as not supported by TensorRT "
                                   f"{caps.major}.x yet; build on the Jetson with JetPack's TensorRT 10")
        if options.dla_core < 0:
            raise EngineBuildError(f"--dla-core {options.dla_core}: DLA cores are numbered 0..N-1 (Orin: 0 or 1)")
        if precision == "fp32":
            raise EngineBuildError("--dla-core: the DLA runs only FP16 or INT8; add --precision fp16 (or int8/best)")
        prof = options.profile
        if not prof.min == prof.opt == prof.max:
            raise EngineBuildError(f"--dla-core: DLA engines need a fixed batch (min = opt = max), got --batch {prof}; "
                                   f"pass --batch {prof.opt} (one number means N:N:N)")
        flags.append("GPU_FALLBACK")  # layers the DLA cannot run go to the GPU (silently: inspect the engine)
        notes.append(f"DLA core {options.dla_core} with GPU fallback")
    if options.version_compatible:
        flags.append("VERSION_COMPATIBLE")
        notes.append("version-compatible: runs on later TensorRT of the same major (lean runtime embedded)")
    bad = sorted(set(flags) & caps.removed_flags)
    if bad:  # the table is wrong if this fires; never hand TensorRT a removed flag
        raise AssertionError(f"build plan would set {bad}, removed in TensorRT {caps.major}")
    return BuildPlan(trt_version, tuple(flags), caps.strongly_typed, precision, options.workspace_mb << 20,
                     options.opt_level, options.dla_core, tuple(notes))


# ----------------------------------------------------------------------------- parser errors
@dataclass(frozen=True)
class ParserErrorInfo:
    desc: str
    node: int = -1
    node_name: str = ""
    node_operator: str = ""
    code: str = ""


def format_parser_errors(onnx_path: str | Path, errors: Sequence[ParserErrorInfo]) -> str:
    """One line per parser error, naming the ONNX node (what TensorRT's OnnxParser reports)."""
    lines = [f"TensorRT's ONNX parser rejected {onnx_path} ({len(errors)} error(s)):"]
    for e in errors:
        where = f"node {e.node} {e.node_name!r} ({e.node_operator})" if e.node >= 0 else "graph"
        code = f" [{e.code}]" if e.code else ""
        lines.append(f"  {where}{code}: {e.desc.strip()}")
    lines.append("Re-export with `fakewatch export onnx` (opset 17, simplified) or check the operator's TensorRT "
                 "support; --verbose-log FILE has the full parser log")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- sidecar + compatibility
def default_engine_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".engine")


def rebuild_command(onnx_path: str | Path, engine_path: str | Path, options: BuildOptions) -> str:
    args = ["fakewatch", "engine", str(onnx_path), "-o", str(engine_path), "--precision", options.precision,
            "--batch", str(options.profile), "--workspace-mb", str(options.workspace_mb),
            "--opt-level", str(options.opt_level)]
    if options.dla_core is not None:
        args += ["--dla-core", str(options.dla_core)]
    if options.timing_cache:
        args += ["--timing-cache", str(options.timing_cache)]
    if options.version_compatible:
        args.append("--version-compatible")
    if options.device:
        args += ["--device", str(options.device)]      # the GPU it was built (and tuned) on
    return shlex.join(args)


def engine_build_info(*, trt_version: str, gpu_name: str, compute_capability: Any, onnx_path: str | Path,
                      onnx_sha256: str, plan: BuildPlan, options: BuildOptions, engine_path: str | Path,
                      build_seconds: float, plan_sha256: str | None = None,
                      plan_bytes: int | None = None) -> dict[str, Any]:
    """The sidecar's ``"tensorrt"`` section (``plan_sha256``/``plan_bytes`` let the runner and caches detect a
    truncated or replaced plan: fakewatch.core.tensorrt.check_plan_intact)."""
    integrity = {} if plan_sha256 is None else {"plan_sha256": plan_sha256, "plan_bytes": int(plan_bytes or 0)}
    return {**integrity,
        "version": str(trt_version),
        "gpu_name": str(gpu_name),
        "compute_capability": format_cc(compute_capability),
        "onnx_path": str(onnx_path),
        "onnx_sha256": onnx_sha256,
        "precision": plan.precision,
        "requested_precision": options.precision,
        "flags": list(plan.flags),
        "strongly_typed": plan.strongly_typed,
        "profile": {"min": options.profile.min, "opt": options.profile.opt, "max": options.profile.max},
        "workspace_mb": options.workspace_mb,
        "opt_level": plan.opt_level,
        "dla_core": plan.dla_core,
        "version_compatible": options.version_compatible,
        "device": options.device,
        "build_seconds": round(float(build_seconds), 3),
        "rebuild_command": rebuild_command(onnx_path, engine_path, options),
    }


def write_engine_sidecar(engine_path: str | Path, spec: ModelSpec, info: Mapping[str, Any]) -> Path:
    """``model.engine.json``: the contract (precision = what was built) + the ``"tensorrt"`` section."""
    built = spec.replace(precision=info["precision"]).with_provenance(
        tensorrt_engine={k: info[k] for k in ("version", "gpu_name", "compute_capability", "onnx_sha256")})
    return write_sidecar(engine_path, built, extra={"tensorrt": dict(info)})


__all__ = ["BatchProfile", "BuildOptions", "BuildPlan", "EngineBuildError", "EngineCompatError",
           "OnnxPrecisionInfo", "PRECISIONS", "ParserErrorInfo", "TENSORRT_MISSING", "TRT_CAPABILITIES",
           "TrtCapabilities", "capabilities_for", "check_engine_compat", "check_precision_request",
           "default_engine_path", "engine_build_info", "file_sha256", "format_cc", "format_parser_errors",
           "inspect_onnx_precision", "make_build_plan", "parse_profile", "rebuild_command", "write_engine_sidecar"]
