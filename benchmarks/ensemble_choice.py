"""Ensemble as one ONNX (members side by side) or as a list of ONNX models: which runs faster here?

``python -m fakewatch.benchmarks.ensemble_choice --variant tf-b0 --members 3 -o benchmarks/results/published``
builds ``members`` random-weight DFDC-style classifiers (timm encoder + 1-logit head, the dfdc-selimsef recipe's
model), exports them once as one graph (``core.published.make_ensemble``: one input, mean of sigmoids) and once
each, then times ONNX Runtime on the same inputs: per-batch latency (median of ``--iters``), session creation,
files on disk, memory (RSS of a fresh child process that only opens the sessions and runs one batch, so the two
ways do not share an allocator) and the largest score difference between the two ways (they must agree). Writes
``<name>.json`` and ``<name>.md`` (default ``ensemble_choice``) into the output folder.

A single ONNX file holds at most 2 GiB (protobuf); the weight bytes of the one-graph ensemble are reported against
that limit (7 x B7 fp32: 1.79 GB, under it).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
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


_MEMORY_CHILD = r"""
import json, resource, sys
import numpy as np, onnxruntime as ort
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6
threads, size, batch, paths = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
base = rss_mb()
opts = ort.SessionOptions(); opts.intra_op_num_threads = threads
sessions = [ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"]) for p in paths]
loaded = rss_mb()
x = np.zeros((batch, 3, size, size), np.float32)
for s in sessions:
    s.run(None, {s.get_inputs()[0].name: x})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6   # Linux: KiB
print(json.dumps({"loaded_mb": round(loaded - base, 1), "after_run_mb": round(rss_mb() - base, 1),
                  "peak_rss_mb": round(peak, 1), "baseline_mb": round(base, 1)}))
"""


def _session_memory(paths, threads: int, size: int, batch: int) -> dict:
    """RSS a process needs to hold ``paths``' sessions and run one batch (fresh child: no shared allocator)."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(threads), str(size), str(batch),
                          *map(str, paths)], capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _time(fn, iters: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def measure(variant: str, members: int, size: int, batches: tuple[int, ...], iters: int, threads: int,
            simplify: bool = True, workdir: str | Path | None = None, prepare_only: bool = False) -> dict:
    import torch
    from tqdm import tqdm

    from fakewatch.core.checkpoint import build_model, default_spec
    from fakewatch.core.published import make_ensemble
    from fakewatch.export.onnx_export import export_onnx

    spec = default_spec(variant, input_size=(size, size), resize="isotropic_pad", roi_rule="dfdc", roi_margin=1 / 3)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="fw-ensemble-"))
    work.mkdir(parents=True, exist_ok=True)
    key = {"variant": variant, "members": members, "size": size, "simplify": simplify}
    marker = work / "exports.json"
    one, singles = work / "ensemble.onnx", [work / f"member{i}.onnx" for i in range(members)]
    if marker.is_file() and json.loads(marker.read_text()).get("key") == key:   # exported (and verified) before
        weight_bytes = json.loads(marker.read_text())["weight_bytes"]
    else:
        torch.manual_seed(0)
        models = [build_model(spec, exportable=True) for _ in range(members)]
        weight_bytes = sum(p.numel() * p.element_size() for m in models for p in m.state_dict().values())
        with tqdm(total=members + 1, desc="export", unit="onnx") as bar:
            export_onnx(make_ensemble(models), spec, one, verify_batches=(1,), simplify=simplify)
            bar.update()
            for m, path in zip(models, singles):
                export_onnx(m, spec, path, verify_batches=(1,), simplify=simplify)
                bar.update()
        del models   # the sessions below are what a deployment holds
        marker.write_text(json.dumps({"key": key, "weight_bytes": weight_bytes}))
    if prepare_only:
        return {}
    memory = {"one_onnx": _session_memory([one], threads, size, 1),
              "list": _session_memory(singles, threads, size, 1)}
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
                   f"--size {size} --batches {','.join(map(str, batches))} --iters {iters} --threads {threads}"
                   + ("" if simplify else " --no-simplify"),
        "variant": variant, "members": members, "input": size, "threads": threads, "iters": iters,
        "simplified": simplify, "weight_gb": round(weight_bytes / 1e9, 3),
        "under_protobuf_2gib": weight_bytes < 2 ** 31, "memory_mb": memory,
        "one_onnx_mb": round(one.stat().st_size / 1e6, 1),
        "list_mb": round(sum(p.stat().st_size for p in singles) / 1e6, 1),
        "one_onnx_load_s": round(one_load, 2), "list_load_s": round(list_load, 2), "rows": rows,
    }


def to_markdown(r: dict) -> str:
    lines = [f"# Ensemble: one ONNX vs a list ({r['members']} x {r['variant']} @{r['input']}, ONNX Runtime CPU, "
             f"{r['threads']} thread(s))", "", f"- command: `{r['command']}`",
             f"- files: one ONNX {r['one_onnx_mb']} MB, list {r['list_mb']} MB in all",
             f"- session creation: one ONNX {r['one_onnx_load_s']} s, list {r['list_load_s']} s",
             *_memory_lines(r), f"- choice: {choose(r)}", "",
             "| batch | one ONNX ms | list ms | list / one | max P(fake) difference |", "|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['batch']} | {row['one_onnx_ms']} | {row['list_ms']} | "
                     f"{row['list_ms'] / row['one_onnx_ms']:.2f} | {row['max_prob_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def choose(r: dict) -> str:
    """The way to ship, from the measured rows: one graph unless the list was faster at some batch."""
    slower = [row["batch"] for row in r["rows"] if row["one_onnx_ms"] > row["list_ms"]]
    if slower:
        return f"list of models (one ONNX was slower at batch {', '.join(map(str, slower))})"
    extra = ""
    if "memory_mb" in r:
        delta = r["memory_mb"]["one_onnx"]["after_run_mb"] - r["memory_mb"]["list"]["after_run_mb"]
        extra = f"; it holds {delta:+.0f} MB of RSS against the list"
    ratios = ", ".join(f"{row['list_ms'] / row['one_onnx_ms']:.2f}x at batch {row['batch']}" for row in r["rows"])
    return f"one ONNX (faster at every batch measured: {ratios}{extra})"


def _memory_lines(r: dict) -> list[str]:
    if "memory_mb" not in r:   # results written before memory was measured
        return []
    one, lst = r["memory_mb"]["one_onnx"], r["memory_mb"]["list"]
    return [f"- weights: {r['weight_gb']} GB fp32 in the one-graph ensemble "
            f"({'under' if r['under_protobuf_2gib'] else 'OVER'} the 2 GiB single-file ONNX limit)",
            f"- memory (fresh process, sessions + one batch-1 run, RSS above the process baseline): one ONNX "
            f"{one['after_run_mb']} MB (peak RSS {one['peak_rss_mb']} MB), list {lst['after_run_mb']} MB "
            f"(peak RSS {lst['peak_rss_mb']} MB)",
            f"- load while measuring (1/5/15 min): {r.get('load_before', '?')} before, {r.get('load_after', '?')} after"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="tf-b0")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--size", type=int, default=380)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-simplify", dest="simplify", action="store_false",
                    help="skip onnxsim on every export (it needs several copies of a 1.8 GB graph in memory)")
    ap.add_argument("--name", default="ensemble_choice", help="result file stem in --output")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the exported models here and reuse them on the next run with the same settings")
    ap.add_argument("--prepare", action="store_true", help="only export (into --workdir), measure nothing")
    ap.add_argument("--render", type=Path, default=None, metavar="JSON",
                    help="rewrite JSON's markdown and choice from its measured rows, measure nothing")
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/published"))
    a = ap.parse_args(argv)
    if a.members < 2:
        ap.error("--members must be >= 2 (an ensemble)")
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if a.render:   # rewrite the markdown (and the choice) from a result written before: no measuring
        r = json.loads(a.render.read_text())
        r["choice"] = choose(r)
        a.render.write_text(json.dumps(r, indent=2) + "\n")
        a.render.with_suffix(".md").write_text(to_markdown(r))
        print(to_markdown(r))
        return 0
    if a.prepare and a.workdir is None:
        ap.error("--prepare needs --workdir (where the next run finds the exports)")
    r = measure(a.variant, a.members, a.size, tuple(int(b) for b in a.batches.split(",")), a.iters, a.threads,
                a.simplify, a.workdir, a.prepare)
    if a.prepare:
        print(f"exports ready in {a.workdir}")
        return 0
    r["load_before"], r["load_after"] = load_before, " ".join(Path("/proc/loadavg").read_text().split()[:3])
    r["choice"] = choose(r)
    if a.name != "ensemble_choice":
        r["command"] += f" --name {a.name}"
    a.output.mkdir(parents=True, exist_ok=True)
    (a.output / f"{a.name}.json").write_text(json.dumps(r, indent=2) + "\n")
    (a.output / f"{a.name}.md").write_text(to_markdown(r))
    print(to_markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
