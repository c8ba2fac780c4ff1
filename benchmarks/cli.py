"""``fakewatch bench``: model-only sweep + end-to-end pipeline + naive-loop baseline, written as CSV/JSON/MD/PNG.

Imports nothing heavy at module level (the CLI must start without torch).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

PRECISIONS = ("fp32", "int8", "fp16")


def _csv(kind: str, allowed: tuple[str, ...] | None = None):
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(x.strip() for x in text.split(",") if x.strip())
        if not items:
            raise argparse.ArgumentTypeError(f"empty {kind} list")
        if allowed:
            bad = [x for x in items if x not in allowed]
            if bad:
                raise argparse.ArgumentTypeError(f"unknown {kind} {', '.join(bad)}; choose from {', '.join(allowed)}")
        return items
    return parse


def _ints(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return vals


def _auto_int(text: str) -> int | None:
    if text == "auto":
        return None
    vals = _ints(text)
    if len(vals) != 1:
        raise argparse.ArgumentTypeError(f"expected one positive integer or 'auto', got {text!r}")
    return vals[0]


def _streams_list(text: str) -> tuple[str, ...]:
    """``1,auto`` -> ("1", "auto"): CPU throughput-mode stream counts (positive integers or 'auto')."""
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items or any(x != "auto" and not (x.isdigit() and int(x) >= 1) for x in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated stream counts (>= 1) or 'auto', got {text!r}")
    return tuple(x if x == "auto" else str(int(x)) for x in items)


def register(sub: argparse._SubParsersAction) -> None:
    from fakewatch.benchmarks.sweep import ALL_BACKENDS

    p = sub.add_parser(
        "bench", help="benchmark variants x backends x precisions, the watch pipeline and a naive loop",
        description="Benchmark model-only latency/throughput (variant x backend x precision x batch), the real "
                    "watch pipeline end to end on generated unpaced files, and the naive OpenCV+torch loop. "
                    "Quick by default (b0, lite0); --full sweeps b0-b7 and lite0-lite4. Rows that cannot run here "
                    "(TensorRT without a GPU, a precision without its tool) are listed as skipped with the reason.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--full", action="store_true", help="sweep b0-b7 + lite0-lite4 (minutes to tens of minutes)")
    p.add_argument("--variants", type=_csv("variant"), help="comma-separated variants (default: b0,lite0; "
                                                            "--full: b0-b7,lite0-lite4)")
    p.add_argument("--backend", type=_csv("backend", ALL_BACKENDS), default=None,
                   help=f"comma-separated backends (default: all of {','.join(ALL_BACKENDS)}; unavailable ones "
                        f"are reported as skipped)")
    p.add_argument("--precision", type=_csv("precision", PRECISIONS), default=None,
                   help="comma-separated precisions (default: fp32,int8,fp16)")
    p.add_argument("--batch", type=_ints, default=None, help="comma-separated batch sizes (default: 1,8; --full: 1)")
    p.add_argument("--streams", type=_streams_list, default=("1",),
                   help="comma-separated CPU throughput streams for onnxruntime/openvino rows, e.g. 1,auto (each "
                        "batch split into that many shards run at once, as `fakewatch watch --streams`); other "
                        "backends run once per batch")
    p.add_argument("--iters", type=int, default=50, help="timed iterations per model row (capped by --max-seconds)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up iterations per model row")
    p.add_argument("--max-seconds", type=float, default=6.0,
                   help="time budget per model row's timed loop (>= 5 iterations always run)")
    p.add_argument("--slow-max-seconds", type=float, default=None,
                   help="time budget per row for the large variants (>= 456 px: b5-b7); default: --max-seconds")
    p.add_argument("--e2e", action=argparse.BooleanOptionalAction, default=True,
                   help="run the watch pipeline end to end on generated files")
    p.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True,
                   help="run the naive OpenCV + torch eager per-frame loop (speedup baseline)")
    p.add_argument("--e2e-variants", type=_csv("variant"), default=("b0",), help="variants for e2e/naive rows")
    p.add_argument("--e2e-sources", type=_ints, default=(1, 2), help="parallel file sources per e2e row")
    p.add_argument("--e2e-batch", type=_auto_int, default=None,
                   help="pipeline max batch for e2e rows (default: auto, as `fakewatch watch`: number of sources)")
    p.add_argument("--e2e-frames", type=int, default=200, help="frames in the generated e2e video")
    p.add_argument("--name", default=None, help="result name (default: quick / full / custom)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="output directory (default: benchmarks/results/<name>)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="artifact cache (default: $FAKEWATCH_CACHE/bench or ~/.cache/fakewatch/bench)")
    p.add_argument("--prepare", action="store_true",
                   help="only export/quantize the artifacts the rows need (into --workdir), measure nothing")
    p.add_argument("--debug", action="store_true", help="print tracebacks of failed rows")
    f = p.add_argument_group("face ROI (--face-roi runs only these rows; benchmarks/face_roi.py)")
    f.add_argument("--face-roi", action="store_true",
                   help="detector cost per frame + the demo model on paced 30 fps camera-size streams of real faces "
                        "(frames processed vs offered, p99 latency) -> benchmarks/results/face_roi/")
    f.add_argument("--face-sizes", type=_csv("size", ("720p", "1080p")), default=("720p", "1080p"))
    f.add_argument("--face-sources", type=_ints, default=(1, 4, 8), help="paced streams per face-ROI row")
    f.add_argument("--face-seconds", type=float, default=12.0, help="seconds per face-ROI row")
    t = p.add_argument_group("triton (--triton runs only these rows; benchmarks/triton_bench.py)")
    t.add_argument("--triton", action="store_true",
                   help="the triton backend against a local `fakewatch serve` (make pytriton-env) vs in-process ONNX "
                        "Runtime: throughput at --batch sizes, same logits, paced watch rows with 1 and 2 batches "
                        "in flight -> benchmarks/results/triton_bench/")
    t.add_argument("--triton-rounds", type=int, default=3, help="alternating rounds per throughput mode")
    t.add_argument("--triton-seconds", type=float, default=4.0, help="seconds per throughput sample")
    t.add_argument("--triton-paced", type=lambda v: () if v.strip() == "0" else _ints(v), default=(4,), help="paced 720p streams per watch row (0 = none)")
    t.add_argument("--triton-paced-seconds", type=float, default=12.0, help="seconds per paced watch row")
    t.add_argument("--triton-servers", default="python-backend,pytriton,python-backend-2x1",
                   help="server configurations to compare (benchmarks/triton_bench.py:SERVER_CONFIGS), comma-separated;"
                        " the first carries the goal and the paced rows")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from fakewatch.benchmarks.sweep import ALL_BACKENDS, FULL_VARIANTS, QUICK_VARIANTS, BenchConfig
    from fakewatch.core.variants import resolve_variant

    if args.iters < 1 or args.warmup < 0 or args.max_seconds <= 0:
        raise ValueError(f"--iters must be >= 1, --warmup >= 0 and --max-seconds > 0 (got {args.iters}, "
                         f"{args.warmup}, {args.max_seconds})")
    variants = args.variants or (FULL_VARIANTS if args.full else QUICK_VARIANTS)
    variants = tuple(resolve_variant(v).name for v in variants)  # unknown names fail here with suggestions
    e2e_variants = tuple(resolve_variant(v).name for v in args.e2e_variants)
    name = args.name or ("full" if args.full else "quick" if not (args.variants or args.backend or args.precision
                                                                   or args.batch) else "custom")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (it becomes a directory name)")
    out = args.output or Path("benchmarks") / "results" / name
    return BenchConfig(
        name=name, variants=variants, backends=args.backend or ALL_BACKENDS,
        precisions=args.precision or PRECISIONS, batches=args.batch or ((1,) if args.full else (1, 8)),
        streams=args.streams,
        warmup=args.warmup, iters=args.iters, max_seconds=args.max_seconds,
        slow_variant_max_seconds=args.slow_max_seconds, e2e=args.e2e, naive=args.naive,
        e2e_variants=e2e_variants, e2e_sources=args.e2e_sources, e2e_batch=args.e2e_batch,
        e2e_frames=args.e2e_frames, workdir=str(args.workdir) if args.workdir else None, out_dir=str(out),
        prepare_only=args.prepare, debug=args.debug)


def canonical_argv(args: argparse.Namespace) -> list[str]:
    """Every option spelled out, so re-running the recorded command reproduces the run even if defaults change."""
    def j(vals) -> str:
        return ",".join(str(v) for v in vals)

    cfg = config_from_args(args)
    argv = ["bench", "--variants", j(cfg.variants), "--backend", j(cfg.backends), "--precision", j(cfg.precisions),
            "--batch", j(cfg.batches), "--streams", j(cfg.streams), "--iters", str(cfg.iters),
            "--warmup", str(cfg.warmup),
            "--max-seconds", f"{cfg.max_seconds:g}", "--e2e" if cfg.e2e else "--no-e2e",
            "--naive" if cfg.naive else "--no-naive", "--e2e-variants", j(cfg.e2e_variants),
            "--e2e-sources", j(cfg.e2e_sources), "--e2e-batch", str(cfg.e2e_batch or "auto"),
            "--e2e-frames", str(cfg.e2e_frames), "--name", cfg.name, "-o", cfg.out_dir]
    if cfg.slow_variant_max_seconds is not None:
        argv += ["--slow-max-seconds", f"{cfg.slow_variant_max_seconds:g}"]
    if cfg.workdir:
        argv += ["--workdir", cfg.workdir]
    return argv


def run(args: argparse.Namespace) -> int:
    from fakewatch.benchmarks.sweep import prepare, run_bench

    if args.face_roi:
        from fakewatch.benchmarks.face_roi import run as run_face_roi

        out = args.output or Path("benchmarks") / "results" / "face_roi"
        cmd = (f"fakewatch bench --face-roi --face-sizes {','.join(args.face_sizes)} --face-sources "
               f"{','.join(map(str, args.face_sources))} --face-seconds {args.face_seconds:g}")
        doc = run_face_roi(args.face_sizes, args.face_sources, args.face_seconds, ("blazeface",), out, command=cmd)
        return 0 if any(r.get("status") == "ok" for r in doc["rows"] if r["kind"] == "e2e") else 1
    if args.triton:
        return _run_triton(args)
    cfg = config_from_args(args)
    if cfg.prepare_only:
        return prepare(cfg)
    rows, _paths = run_bench(cfg, argv=canonical_argv(args))
    return 0 if any(r["status"] == "ok" for r in rows) else 1


def _run_triton(args: argparse.Namespace) -> int:
    from fakewatch.benchmarks.triton_bench import OUT, run as run_triton

    batches = args.batch or (1, 8)
    paced = tuple(n for n in args.triton_paced if n > 0)
    if args.triton_rounds < 1 or args.triton_seconds <= 0 or args.triton_paced_seconds <= 0:
        raise ValueError("--triton-rounds must be >= 1, --triton-seconds and --triton-paced-seconds > 0")
    servers = tuple(s.strip() for s in args.triton_servers.split(",") if s.strip())   # run() checks the names
    out = args.output or OUT
    cmd = (f"fakewatch bench --triton --batch {','.join(map(str, batches))} --triton-rounds {args.triton_rounds} "
           f"--triton-seconds {args.triton_seconds:g} --triton-paced {','.join(map(str, paced)) or 0} "
           f"--triton-paced-seconds {args.triton_paced_seconds:g} --triton-servers {','.join(servers)}"
           + (f" -o {out}" if args.output else ""))
    doc = run_triton(batches, args.triton_rounds, args.triton_seconds, paced, args.triton_paced_seconds, out,
                     command=cmd, servers=servers)
    return 0 if any(r.get("status", "ok") == "ok" for r in doc["rows"]) else 1
