"""A/B of the load-driven detection cadence on paced streams, interleaved so both arms see the same machine load.

``python -m fakewatch.benchmarks.cadence_ab`` runs the face-ROI e2e row (benchmarks/face_roi.py: demo model,
BlazeFace, paced 30 fps copies of the upscaled carphone footage, each row in its own process) alternately with a
fixed cadence (``max_detect_every = detect_every = 3``) and with the default load-driven cadence (up to 6), ``--pairs``
times, and writes ``benchmarks/results/face_roi/cadence_ab.{json,md}``: frames processed (worst stream) per run, and
the median of each arm. On a shared machine the absolute fractions move with other jobs; the pairing keeps the
comparison fair.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("benchmarks") / "results" / "face_roi"
ARMS = {"fixed K=3": 3, "load-driven K=3..6": None}


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from fakewatch.benchmarks.face_media import carphone, upscaled
    from fakewatch.benchmarks.face_roi import _load, _row_in_subprocess

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="720p")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    video = upscaled(carphone(), args.size, seconds=8.0)
    load_before = _load()
    runs: list[dict[str, Any]] = []
    jobs = [(i, arm) for i in range(args.pairs) for arm in (ARMS if i % 2 == 0 else reversed(list(ARMS)))]
    for i, arm in tqdm(jobs, desc="cadence A/B rows", unit="row"):
        row = _row_in_subprocess({"video": str(video), "size": args.size, "n": args.streams, "seconds": args.seconds,
                                  "detector": "blazeface", "detect_every": None, "threads": 1,
                                  "max_detect_every": ARMS[arm]}, timeout=args.seconds * 6 + 120)
        runs.append({"pair": i, "arm": arm, "load": _load(), **{k: row.get(k) for k in (
            "status", "processed_min", "processed_mean", "p99_ms", "detector_share", "frames_at_detect_every",
            "cpu_ms_per_frame", "decode_cpu_ms_per_decoded_frame", "cpu_ceiling", "reason")}})
        print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for arm in ARMS:
        ok = [r for r in runs if r["arm"] == arm and r["status"] == "ok"]
        summary[arm] = {"runs": len(ok),
                        "processed_min_median": round(float(np.median([r["processed_min"] for r in ok])), 4)
                        if ok else None,
                        "cpu_ceiling_median": round(float(np.median([r["cpu_ceiling"] for r in ok])), 4)
                        if ok else None,
                        "detector_share_median": round(float(np.median([r["detector_share"] for r in ok])), 4)
                        if ok else None}
    doc = {"command": "python -m fakewatch.benchmarks.cadence_ab " + " ".join(argv or []),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
           "load_before": load_before, "load_after": _load(), "size": args.size, "streams": args.streams,
           "seconds": args.seconds, "runs": runs, "summary": summary}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "cadence_ab.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [f"# Detection cadence A/B: {args.streams} x {args.size} paced 30 fps streams", "",
          f"Command: `{doc['command'].strip()}`  ", f"Machine: {doc['machine']}  ",
          f"Load before: `{load_before}`  ", f"Load after: `{doc['load_after']}`", "",
          "| arm | runs | processed, worst stream (median) | CPU ceiling (median) | detector share (median) |",
          "|---|---|---|---|---|"]
    for arm, s in summary.items():
        fmt = (lambda v: format(v, ".1%") if v is not None else "")
        md.append(f"| {arm} | {s['runs']} | {fmt(s['processed_min_median'])} | {fmt(s['cpu_ceiling_median'])} | "
                  f"{s['detector_share_median']} |")
    md += ["", "| pair | arm | processed (worst) | p99 ms | detector share | frames at K | CPU ceiling | load after |",
           "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        at = ", ".join(f"{k}: {v}" for k, v in (r.get("frames_at_detect_every") or {}).items())
        md.append(f"| {r['pair']} | {r['arm']} | {r['processed_min']} | {r['p99_ms']} | {r['detector_share']} | "
                  f"{at} | {r['cpu_ceiling']} | `{r['load'].split('load average:')[-1].strip()}` |")
    (args.output / "cadence_ab.md").write_text("\n".join(md) + "\n")
    print(args.output / "cadence_ab.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
