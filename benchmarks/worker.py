"""Run one benchmark job in a fresh process: ``python -m fakewatch.benchmarks.worker '<json>'`` -> one JSON row on
stdout.

Why a process per row: (1) peak RSS is the whole process's high-water mark (VmHWM), which only means something
for a process that ran just this model; (2) thread pools of one library (ONNX Runtime's spinning intra-op
threads, torch's OpenMP pool) cannot steal the CPU from the next row's library - measured: a tiny model's torch
latency went from 1.5 ms alone to 200 ms after ORT sessions in the same process on 2 cores.
The parent builds the artifacts first, so the worker only loads and times.
"""
from __future__ import annotations

import json
import sys
from typing import Any

MARKER = "FAKEWATCH_BENCH_ROW "


def run_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Jobs: "model" (one model-only case), "naive" (the naive loop), "e2e" (the watch pipeline)."""
    job = payload.get("job", "model")
    if job == "model":
        from fakewatch.benchmarks.artifacts import ArtifactCache
        from fakewatch.benchmarks.model_bench import ModelCase, run_model_case

        cache = ArtifactCache(payload["workdir"])
        case = ModelCase(payload["variant"], payload["backend"], payload["precision"], int(payload["batch"]),
                         str(payload.get("streams", "1")))
        row = run_model_case(cache, case, warmup=int(payload["warmup"]), iters=int(payload["iters"]),
                             max_seconds=payload["max_seconds"], debug=bool(payload.get("debug")))
    elif job == "naive":
        from fakewatch.benchmarks.naive import naive_loop

        row = naive_loop(payload["checkpoint"], payload["video"])
    elif job == "e2e":
        from fakewatch.benchmarks.pipeline_run import run_pipeline

        row = run_pipeline(payload["artifact"], payload["backend"], payload["sources"], batch=payload["batch"])
    else:
        raise ValueError(f"unknown worker job {job!r}")
    hwm = _vm_hwm_mb()
    if row["status"] == "ok" and hwm is not None:
        row["peak_rss_mb"] = hwm
    return row


def _vm_hwm_mb() -> float | None:
    """Peak RSS of this process image (Linux VmHWM, reset by exec).

    Not ru_maxrss: Linux carries it over from the parent across fork+exec, so a worker started by a parent that
    once held 10 GB (a B7 export) would report 10 GB. Elsewhere the sampled peak from PeakRss stays.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m fakewatch.benchmarks.worker '<case json>'", file=sys.stderr)
        return 2
    row = run_job(json.loads(argv[0]))
    # a marker line, so library chatter on stdout can never be mistaken for the result
    print(MARKER + json.dumps(row, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run_isolated(payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``payload`` in ``python -m fakewatch.benchmarks.worker``; returns its row, or raises RuntimeError with the
    reason."""
    import subprocess

    try:
        proc = subprocess.run([sys.executable, "-m", "fakewatch.benchmarks.worker", json.dumps(payload)],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"worker timed out after {timeout_s:.0f} s") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"worker exited with code {proc.returncode} without a result: {tail}")
