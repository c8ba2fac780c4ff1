"""Does the live dashboard cost the pipeline frames? ``python -m fakewatch.benchmarks.dashboard_cost`` writes
``benchmarks/results/dashboard/cost.{json,md,png}``.

The real ``watch`` pipeline (bundled demo model, BlazeFace face ROI) watches ``--streams`` copies of real face footage
(carphone upscaled to 1280x720, 30 fps, looped) paced like cameras, for ``--seconds`` per row, in four modes:

* ``off``: no dashboard;
* ``idle``: the dashboard and its HTTP server run, nobody looks;
* ``1 page`` / ``4 pages``: that many pages watch it, each a client process doing what ``dashboard.js`` does: one
  Server-Sent Events stream, every camera's ``latest.jpg`` fetched again 250 ms after the previous one arrived.

Frames processed are compared with the frames a 30 fps camera offers in that time (as in ``face_roi``). The modes are
interleaved over ``--rounds`` rounds, so a change of machine load hits them alike. Each row also records how many
JPEGs were encoded (the server encodes a camera at most ``jpeg_fps`` times a second however many pages poll) and how
many were served. The machine is shared: ``uptime`` before and after is written with the results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("benchmarks") / "results" / "dashboard"
FPS = 30
MODES = {"off": None, "idle": 0, "1 page": 1, "4 pages": 4}     # mode -> pages polling (None: no dashboard)
FRAME_MS = 250                                                  # the page's refresh (dashboard.js FRAME_MS)


def _load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def page_client(base: str, cameras: list[str], seconds: float) -> dict[str, int]:
    """One browser page's traffic: the SSE stream plus each camera's newest JPEG, refetched FRAME_MS after it
    arrived (one request in flight per tile, as the page's <img> does)."""
    stop = time.monotonic() + seconds
    counts = {"jpegs": 0, "bytes": 0, "sse_bytes": 0}

    def sse() -> None:
        try:
            with urllib.request.urlopen(base + "api/stream", timeout=seconds + 5) as r:
                while time.monotonic() < stop:
                    line = r.readline()
                    if not line:
                        return
                    counts["sse_bytes"] += len(line)
        except OSError:
            return

    def tile(cam: str) -> None:
        url = base + "api/cameras/" + urllib.parse.quote(cam, safe="") + "/latest.jpg"
        while time.monotonic() < stop:
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    counts["bytes"] += len(r.read())
                    counts["jpegs"] += 1
            except OSError:
                pass
            time.sleep(FRAME_MS / 1e3)

    import urllib.parse

    threads = [threading.Thread(target=sse, daemon=True)] + \
        [threading.Thread(target=tile, args=(c,), daemon=True) for c in cameras]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    return counts


def row(video: Path, n: int, seconds: float, pages: int | None) -> dict[str, Any]:
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.dashboard import Dashboard
    from fakewatch.runtime.http_server import DashboardServer, HttpSettings
    from fakewatch.runtime.metrics_output import MetricsOutput
    from fakewatch.runtime.monitor import Monitor
    from fakewatch.runtime.pipeline import Pipeline, WatchConfig
    from fakewatch.runtime.watch_cli import DEMO_MODEL
    from fakewatch.streams import open_source

    runner = load_runner(DEMO_MODEL)
    ids = [f"cam{i}" for i in range(n)]
    sources = [open_source(str(video), source_id=sid, pace=True, loop=True) for sid in ids]
    sinks: list[Any] = []
    dash = None
    if pages is not None:
        dash = Dashboard(threshold=runner.spec.threshold)
        metrics = MetricsOutput(0, serve=False)
        dash.server = DashboardServer(HttpSettings("127.0.0.1", 0), dash, metrics)
        monitor = Monitor([dash, metrics], model=DEMO_MODEL.name, backend=runner.name, cameras=ids)
        sinks.append(monitor.start())
    procs = []
    if dash is not None and pages:
        for _ in range(pages):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "fakewatch.benchmarks.dashboard_cost", "--client", dash.server.url,
                 "--cameras", ",".join(ids), "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True))
    cfg = WatchConfig(status_interval_s=1.0, duration_s=seconds)
    summary = Pipeline(sources, runner, cfg, sinks).run()
    served = {"jpegs": 0, "bytes": 0, "sse_bytes": 0}
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            served[k] += v
    offered = FPS * summary.duration_s
    per_stream = {sid: st["frames"] / offered for sid, st in summary.streams.items()}
    total = summary.overall["latency_ms"].get("total", {})
    r = {"mode": next(m for m, p in MODES.items() if p == pages), "pages": pages or 0, "streams": n,
         "seconds": round(summary.duration_s, 2), "processed_min": round(min(per_stream.values()), 4),
         "processed_mean": round(float(np.mean(list(per_stream.values()))), 4),
         "frames": int(summary.overall["frames"]), "offered_per_stream": round(offered, 1),
         "p50_ms": total.get("p50"), "p99_ms": total.get("p99")}
    if dash is not None:
        encodes = sum(t.encodes for t in dash.tiles.values())
        r.update(jpeg_encodes=encodes, encodes_per_camera_s=round(encodes / n / summary.duration_s, 2),
                 jpegs_served=served["jpegs"], mean_jpeg_kb=round(served["bytes"] / max(1, served["jpegs"]) / 1024, 1),
                 sse_kb=round(served["sse_bytes"] / 1024, 1))
    return r


def encode_cost(video: Path, repeats: int = 30) -> dict[str, Any]:
    """Median cost of one newest-frame JPEG (720p -> 640 wide, boxes drawn, quality 75), in the calling thread."""
    import cv2

    from fakewatch.runtime.dashboard import Dashboard, _Slot

    cap = cv2.VideoCapture(str(video))
    ok, img = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"cannot read {video}")
    dash = Dashboard()
    slot = _Slot(img, 0, [(500, 150, 800, 450)], [0.9], [1], "FAKE")
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dash._encode_frame(slot, "FAKE")
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"frame": f"{img.shape[1]}x{img.shape[0]}", "jpeg_width": dash.settings.jpeg_width,
            "ms_median": round(float(np.median(ms)), 3), "repeats": repeats}


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "cost.json", out / "cost.md", out / "cost.png"]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n")
    md = ["# Dashboard cost: frames processed with and without pages watching", "",
          f"Command: `{doc['command']}`  ", f"Machine: {doc['machine']}  ",
          f"Load before: `{doc['load_before']}`  ", f"Load after: `{doc['load_after']}`  ", "",
          f"{doc['streams']} paced 1280x720 30 fps streams (carphone upscaled, looped), bundled demo model with "
          f"BlazeFace, {doc['seconds']:g} s per row, modes interleaved over {doc['rounds']} rounds. *processed* = frames "
          f"decided / frames a 30 fps camera offers in the run time.", "",
          "| round | mode | processed (mean) | processed (min) | p50 ms | p99 ms | JPEG encodes /camera/s | JPEGs served |",
          "|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        md.append(f"| {r['round']} | {r['mode']} | {r['processed_mean']:.3f} | {r['processed_min']:.3f} | "
                  f"{r['p50_ms']} | {r['p99_ms']} | {r.get('encodes_per_camera_s', '–')} | "
                  f"{r.get('jpegs_served', '–')} |")
    md += ["", "Mean over rounds (processed, mean of streams):", ""]
    md += [f"- {m}: {v:.3f}" + (f" ({v - doc['summary']['off']:+.3f} vs off)" if m != "off" else "")
           for m, v in doc["summary"].items()]
    e = doc["encode"]
    md += ["", f"One newest-frame JPEG ({e['frame']} -> {e['jpeg_width']} wide, boxes drawn): median "
               f"{e['ms_median']} ms in the server thread ({e['repeats']} repeats)."]
    paths[1].write_text("\n".join(md) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        modes = list(doc["summary"])
        ax.bar(modes, [doc["summary"][m] * 100 for m in modes], color="#4a7")
        for i, m in enumerate(modes):
            pts = [r["processed_mean"] * 100 for r in doc["rows"] if r["mode"] == m]
            ax.plot([i] * len(pts), pts, "k.", label="rounds" if i == 0 else None)
        ax.set_ylabel("frames processed (% of offered)")
        ax.set_ylim(min(80, min(r["processed_min"] * 100 for r in doc["rows"]) - 2), 101)
        ax.set_title(f"demo model, {doc['streams']}x720p @ 30 fps: dashboard cost")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(paths[2], dpi=110)
        plt.close(fig)
    except ImportError:
        paths.pop()
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client", default=None, help=argparse.SUPPRESS)     # a page's traffic, in its own process
    ap.add_argument("--cameras", default="", help=argparse.SUPPRESS)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.client:
        print(json.dumps(page_client(args.client, args.cameras.split(","), args.seconds)))
        return 0
    from fakewatch.benchmarks.face_media import carphone, upscaled

    video = upscaled(carphone(), "720p", 20.0)
    cmd = "python -m fakewatch.benchmarks.dashboard_cost " + " ".join(argv if argv is not None else sys.argv[1:])
    doc: dict[str, Any] = {"command": cmd.strip(), "machine": f"{platform.node()} {platform.processor() or ''} "
                                                              f"{os.cpu_count()} CPUs".strip(),
                           "streams": args.streams, "seconds": args.seconds, "rounds": args.rounds,
                           "load_before": _load(), "rows": []}
    for rnd in range(1, args.rounds + 1):
        for mode, pages in MODES.items():
            r = row(video, args.streams, args.seconds, pages)
            r["round"] = rnd
            doc["rows"].append(r)
            print(f"round {rnd} {mode:8s}: processed {r['processed_mean']:.3f} (min {r['processed_min']:.3f}), "
                  f"p99 {r['p99_ms']} ms, encodes/cam/s {r.get('encodes_per_camera_s', '-')}", flush=True)
    doc["load_after"] = _load()
    doc["summary"] = {m: round(float(np.mean([r["processed_mean"] for r in doc["rows"] if r["mode"] == m])), 4)
                      for m in MODES}
    doc["encode"] = encode_cost(video)
    for p in write(doc, args.output):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
