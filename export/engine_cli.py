"""``fakewatch engine MODEL.onnx``: build a TensorRT engine + sidecar (imports TensorRT only when run)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "engine", help="build a TensorRT engine (plain plan + JSON sidecar) from an exported ONNX",
        description="Build a TensorRT engine from a fakewatch ONNX (FP32/FP16, or a Q/DQ ONNX for INT8). Build it "
                    "on the machine that runs it: engines are tied to the TensorRT version and GPU.")
    p.add_argument("model", type=Path, help="exported ONNX (with its contract: sidecar or embedded metadata)")
    p.add_argument("-o", "--output", type=Path, help="engine file (default: MODEL.engine next to the ONNX)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8", "best"), default="fp16",
                   help="fp16 (default); int8 needs a Q/DQ ONNX; best = fp16+int8 (TensorRT 10). TensorRT 11 is "
                        "strongly typed: precision then comes from the ONNX itself")
    p.add_argument("--batch", default="1:4:8", metavar="MIN:OPT:MAX",
                   help="optimization profile for the batch dimension (default 1:4:8; one number = fixed)")
    p.add_argument("--workspace-mb", type=int, default=2048, help="builder workspace limit in MiB (default 2048)")
    p.add_argument("--timing-cache", type=Path, metavar="FILE",
                   help="load and save TensorRT's timing cache here (rebuilds go from minutes to seconds)")
    p.add_argument("--dla-core", type=int, metavar="N", help="build for DLA core N with GPU fallback (Jetson)")
    p.add_argument("--opt-level", type=int, default=3, choices=range(6), metavar="0-5",
                   help="builder optimization level (default 3)")
    p.add_argument("--verbose-log", type=Path, metavar="FILE", help="write TensorRT's full (verbose) log here")
    p.add_argument("--version-compatible", action="store_true",
                   help="build a version-compatible engine (runs on later TensorRT of the same major)")
    p.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from fakewatch.export.engine import BuildOptions, parse_profile
    from fakewatch.export.engine_build import build_engine

    options = BuildOptions(precision=args.precision, profile=parse_profile(args.batch),
                           workspace_mb=args.workspace_mb, timing_cache=args.timing_cache, dla_core=args.dla_core,
                           opt_level=args.opt_level, verbose_log=args.verbose_log,
                           version_compatible=args.version_compatible, device=args.device)
    report = build_engine(args.model, args.output, options)
    print(report.summary())
    return 0
