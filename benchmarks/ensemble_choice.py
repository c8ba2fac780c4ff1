"""Ensemble as one ONNX (members side by side) or as a list of ONNX models: which runs faster here?

``python -m fakewatch.benchmarks.ensemble_choice --variant tf-b0 --members 3 -o benchmarks/results/published``
builds ``members`` random-weight DFDC-style classifiers (timm encoder + 1-logit head, the dfdc-selimsef recipe's
model), exports them once as one graph (``core.published.make_ensemble``: one input, mean of sigmoids) and once
each, then times ONNX Runtime on the same inputs: per-batch latency (median of ``--iters``), session creation,
files on disk, and the largest score difference between the two ways (they must agree). Writes
``ensemble_choice.json`` and ``ensemble_choice.md`` into the output folder.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _sessions(paths, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    t0 = time.perf_counter()
    sessions = [ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in paths]
    return sessions, time.perf_counter() - t0


def _time(fn, iters: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def measure(variant: str, members: int, size: int, batches: tuple[int, ...], iters: int, threads: int) -> dict:
    import torch
    from tqdm import tqdm

    from fakewatch.core.checkpoint import build_model, default_spec
    from fakewatch.core.published import make_ensemble
    from fakewatch.export.onnx_export import export_onnx

    spec = default_spec(variant, input_size=(size, size), resize="isotropic_pad", roi_rule="dfdc", roi_margin=1 / 3)
    torch.manual_seed(0)
    models = [build_model(spec, exportable=True) for _ in range(members)]
    work = Path(tempfile.mkdtemp(prefix="fw-ensemble-"))
    with tqdm(total=members + 1, desc="export", unit="onnx") as bar:
        one = export_onnx(make_ensemble(models), spec, work / "ensemble.onnx", verify_batches=(1,)).path
        bar.update()
        singles = []
        for i, m in enumerate(models):
            singles.append(export_onnx(m, spec, work / f"member{i}.onnx", verify_batches=(1,)).path)
            bar.update()
    (one_sess,), one_load = _sessions([one], threads)
    list_sess, list_load = _sessions(singles, threads)
    rows = []
    rng = np.random.default_rng(0)
    for b in tqdm(batches, desc="time", unit="batch"):
        x = rng.uniform(-2, 2, (b, 3, size, size)).astype(np.float32)

        def run_one():
            return one_sess.run(None, {"input": x})[0]

        def run_list():
            probs = [1 / (1 + np.exp(-s.run(None, {"input": x})[0])) for s in list_sess]
            return np.mean(probs, axis=0)

        p_one = 1 / (1 + np.exp(-run_one().astype(np.float64)))
        diff = float(np.max(np.abs(p_one - run_list())))
        rows.append({"batch": b, "one_onnx_ms": round(_time(run_one, iters), 2),
                     "list_ms": round(_time(run_list, iters), 2), "max_prob_diff": diff})
    return {
        "command": f"python -m fakewatch.benchmarks.ensemble_choice --variant {variant} --members {members} "
                   f"--size {size} --batches {','.join(map(str, batches))} --iters {iters} --threads {threads}",
        "variant": variant, "members": members, "input": size, "threads": threads, "iters": iters,
        "one_onnx_mb": round(one.stat().st_size / 1e6, 1),
        "list_mb": round(sum(p.stat().st_size for p in singles) / 1e6, 1),
        "one_onnx_load_s": round(one_load, 2), "list_load_s": round(list_load, 2), "rows": rows,
    }


def to_markdown(r: dict) -> str:
    lines = [f"# Ensemble: one ONNX vs a list ({r['members']} x {r['variant']} @{r['input']}, ONNX Runtime CPU, "
             f"{r['threads']} thread(s))", "", f"- command: `{r['command']}`",
             f"- files: one ONNX {r['one_onnx_mb']} MB, list {r['list_mb']} MB in all",
             f"- session creation: one ONNX {r['one_onnx_load_s']} s, list {r['list_load_s']} s", "",
             "| batch | one ONNX ms | list ms | list / one | max P(fake) difference |", "|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['batch']} | {row['one_onnx_ms']} | {row['list_ms']} | "
                     f"{row['list_ms'] / row['one_onnx_ms']:.2f} | {row['max_prob_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="tf-b0")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--size", type=int, default=380)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/published"))
    a = ap.parse_args(argv)
    if a.members < 2:
        ap.error("--members must be >= 2 (an ensemble)")
    r = measure(a.variant, a.members, a.size, tuple(int(b) for b in a.batches.split(",")), a.iters, a.threads)
    a.output.mkdir(parents=True, exist_ok=True)
    (a.output / "ensemble_choice.json").write_text(json.dumps(r, indent=2) + "\n")
    (a.output / "ensemble_choice.md").write_text(to_markdown(r))
    print(to_markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
