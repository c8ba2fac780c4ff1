"""The thin part of ``fakewatch engine``: executes a :class:`~fakewatch.export.engine.BuildPlan` with TensorRT's
Python API.

Written against the documented TensorRT 10/11 API (Builder, OnnxParser.parse_from_file/num_errors/get_error,
IBuilderConfig.set_memory_pool_limit/builder_optimization_level/set_flag/create_timing_cache/set_timing_cache,
build_serialized_network). It has NOT been run in this project's CI (no GPU/TensorRT there); everything it
decides with is in :mod:`fakewatch.export.engine` and CPU-tested.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fakewatch.core.atomic import atomic_write_bytes
from fakewatch.core.contract import load_spec
from fakewatch.export.engine import (
    TENSORRT_MISSING,
    BuildOptions,
    BuildPlan,
    EngineBuildError,
    ParserErrorInfo,
    check_precision_request,
    default_engine_path,
    engine_build_info,
    file_sha256,
    format_parser_errors,
    inspect_onnx_precision,
    make_build_plan,
    write_engine_sidecar,
)


@dataclass
class EngineBuildReport:
    engine: Path
    sidecar: Path
    plan: BuildPlan
    info: dict[str, Any]

    def summary(self) -> str:
        i = self.info
        lines = [f"engine   {self.engine} ({self.engine.stat().st_size / 1e6:.1f} MB, plain TensorRT plan)",
                 f"sidecar  {self.sidecar}",
                 f"built    TensorRT {i['version']} on {i['gpu_name']} (sm {i['compute_capability']}) in "
                 f"{i['build_seconds']:.1f} s",
                 f"precision {i['precision']} flags [{', '.join(i['flags']) or 'none'}] batch "
                 f"{i['profile']['min']}:{i['profile']['opt']}:{i['profile']['max']}"]
        lines += [f"note     {n}" for n in self.plan.notes]
        return "\n".join(lines)


def import_tensorrt() -> Any:
    """The import boundary: ``tensorrt`` or one clear RuntimeError saying how to install it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeError(TENSORRT_MISSING) from None
    return trt


def gpu_info(device: int = 0) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of CUDA device ``device`` via pycuda (no context is created)."""
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise RuntimeError("pycuda is not installed (needed to query the GPU and run engines): pip install "
                           "'fakewatch[tensorrt]'; on a Jetson set PATH/CUDA_INC_DIR first, see docs/jetson.md"
                           ) from None
    cuda.init()
    if device >= cuda.Device.count():
        raise RuntimeError(f"CUDA device {device} does not exist ({cuda.Device.count()} device(s) visible)")
    dev = cuda.Device(device)
    return dev.name(), tuple(dev.compute_capability())


@contextlib.contextmanager
def on_device(device: int) -> Iterator[None]:
    """Make CUDA device ``device`` current for the block: TensorRT's builder builds (and tunes) on the calling
    thread's current device, which is 0 unless someone selects another."""
    import pycuda.driver as cuda

    cuda.init()
    ctx = cuda.Device(device).make_context()   # pushed: current until the pop
    try:
        yield
    finally:
        ctx.pop()
        ctx.detach()


def _logger(trt: Any, verbose_log: Path | None) -> Any:
    class FileLogger(trt.ILogger):
        """Everything to the log file (if any); warnings and errors to stderr."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.fh = open(verbose_log, "w") if verbose_log else None

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)
            if self.fh:
                self.fh.write(f"[{getattr(severity, 'name', level)}] {msg}\n")
            if level <= int(trt.ILogger.Severity.WARNING):
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return FileLogger()


def build_engine(onnx_path: str | Path, output: str | Path | None = None,
                 options: BuildOptions | None = None) -> EngineBuildReport:
    options = options or BuildOptions()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} does not exist; export one with `fakewatch export onnx`")
    engine_path = Path(output) if output else default_engine_path(onnx_path)
    spec = load_spec(onnx_path)                                # contract first: input name and H x W
    info = inspect_onnx_precision(onnx_path)
    check_precision_request(options.precision, info)          # refuse before importing anything heavy
    for p in (options.timing_cache, options.verbose_log, engine_path):
        if p is not None and not Path(p).parent.exists():
            raise FileNotFoundError(f"directory {Path(p).parent} does not exist (for {p})")

    trt = import_tensorrt()
    plan = make_build_plan(trt.__version__, options, info)
    gpu_name, cc = gpu_info(options.device)
    with on_device(options.device):
        serialized, build_s, cache_note = _build(trt, onnx_path, spec, plan, options)
    if cache_note:
        plan = dataclasses.replace(plan, notes=(*plan.notes, cache_note))
    data = bytes(serialized)
    # plan first, sidecar (with the plan's hash) last: a crash in between leaves a plan without a matching sidecar,
    # which the runner and caches refuse, never a truncated plan that looks valid
    atomic_write_bytes(engine_path, data)   # plain plan: no header, so trtexec/DeepStream/Triton load it
    build = engine_build_info(trt_version=trt.__version__, gpu_name=gpu_name, compute_capability=cc,
                              onnx_path=onnx_path, onnx_sha256=file_sha256(onnx_path), plan=plan, options=options,
                              engine_path=engine_path, build_seconds=build_s,
                              plan_sha256=hashlib.sha256(data).hexdigest(), plan_bytes=len(data))
    sidecar = write_engine_sidecar(engine_path, spec, build)
    return EngineBuildReport(engine_path, sidecar, plan, build)


def _build(trt: Any, onnx_path: Path, spec: Any, plan: BuildPlan, options: BuildOptions) -> tuple[Any, float, str]:
    """Parse, configure and build on the current device; returns (serialized plan, seconds, timing-cache note)."""
    logger = _logger(trt, options.verbose_log)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode since 10; 11 is always strongly typed
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        raise EngineBuildError(format_parser_errors(onnx_path, [
            ParserErrorInfo(e.desc(), e.node(), e.node_name(), e.node_operator(), str(e.code())) for e in errors]))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.opt_level
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    profile = builder.create_optimization_profile()
    profile.set_shape(spec.input_name, *options.profile.shapes(spec))
    config.add_optimization_profile(profile)
    cache_path = options.timing_cache
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    note = ""
    # set_timing_cache returns False when the cache came from another TensorRT/GPU: start a fresh one, say so
    if not config.set_timing_cache(config.create_timing_cache(cache_bytes), ignore_mismatch=False):
        note = (f"timing cache {cache_path} was written by another TensorRT version or GPU; built with a fresh "
                f"cache, which replaces it")
        if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
            raise EngineBuildError("TensorRT refused an empty timing cache; rerun without --timing-cache")

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    if serialized is None:
        hint = f" (full log: {options.verbose_log})" if options.verbose_log else " (rerun with --verbose-log FILE)"
        raise EngineBuildError(f"TensorRT failed to build {onnx_path}{hint}")
    if cache_path:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return serialized, build_s, note
