"""Does the live dashboard cost the pipeline frames? ``python -m fakewatch.benchmarks.dashboard_cost`` writes
``benchmarks/results/dashboard/cost.{json,md,png}``.

The real ``watch`` pipeline (bundled demo model, BlazeFace face ROI) watches paced sources for ``--seconds`` per
row: the paced demo stream (176x144) and ``--streams-720p`` copies of real face footage (carphone upscaled to
1280x720, 30 fps, looped), each in four modes:

* ``off``: no dashboard;
* ``idle``: the dashboard and its HTTP server run, nobody looks;
* ``1 page`` / ``4 pages``: that many pages watch it, each a client process doing what ``dashboard.js`` does: one
  Server-Sent Events stream, every camera's ``latest.jpg`` fetched again 250 ms after the previous one arrived.

Frames processed are compared with the frames a 30 fps camera offers in that time. On a shared machine that fraction
moves with other people's load, so the modes are interleaved in every round and each is compared with the same
round's ``off`` row; two load-robust figures come with it: the CPU seconds per second of the watch process, and the
time the dashboard's hooks take on the pipeline thread per frame. Each row also counts the JPEGs encoded (at most
``jpeg_fps`` per camera per second however many pages poll) and served. ``uptime`` before and after is recorded.
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


class _Timed:
    """CPU time of the calling thread spent in a callable (the dashboard's hooks on the pipeline thread, its encoder
    in server threads): thread time, so waiting for the GIL or for a core on a loaded machine does not count."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.seconds, self.calls = fn, 0.0, 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        t0 = time.thread_time()
        try:
            return self.fn(*args)
        finally:
            dt = time.thread_time() - t0
            with self._lock:
                self.seconds += dt
                self.calls += 1


def _cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)      # every thread of this process: pipeline, readers, server
    return ru.ru_utime + ru.ru_stime


def row(kind: str, video: Path | None, n: int, seconds: float, pages: int | None) -> dict[str, Any]:
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
    if kind == "demo":
        sources = [open_source("demo", source_id=sid, pace=True) for sid in ids]
    else:
        sources = [open_source(str(video), source_id=sid, pace=True, loop=True) for sid in ids]
    sinks: list[Any] = []
    dash = None
    hooks: list[_Timed] = []
    if pages is not None:
        dash = Dashboard(threshold=runner.spec.threshold)
        for name in ("frame", "state", "status", "camera_stats", "event"):      # pipeline-thread hooks
            t = _Timed(getattr(dash, name))
            setattr(dash, name, t)
            hooks.append(t)
        encoder = dash._encode_frame = _Timed(dash._encode_frame)
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
    cpu0 = _cpu_s()
    summary = Pipeline(sources, runner, cfg, sinks).run()
    cpu = _cpu_s() - cpu0
    served = {"jpegs": 0, "bytes": 0, "sse_bytes": 0}
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            served[k] += v
    offered = FPS * summary.duration_s
    per_stream = {sid: st["frames"] / offered for sid, st in summary.streams.items()}
    total = summary.overall["latency_ms"].get("total", {})
    frames = int(summary.overall["frames"])
    r = {"source": kind, "mode": next(m for m, p in MODES.items() if p == pages), "pages": pages or 0,
         "streams": n, "seconds": round(summary.duration_s, 2),
         "processed_min": round(min(per_stream.values()), 4),
         "processed_mean": round(float(np.mean(list(per_stream.values()))), 4),
         "frames": frames, "offered_per_stream": round(offered, 1),
         "p50_ms": total.get("p50"), "p99_ms": total.get("p99"),
         "process_cpu_s_per_s": round(cpu / summary.duration_s, 3)}
    if dash is not None:
        r.update(hooks_us_per_frame=round(sum(h.seconds for h in hooks) / max(1, frames) * 1e6, 1),
                 jpeg_encodes=encoder.calls, encodes_per_camera_s=round(encoder.calls / n / summary.duration_s, 2),
                 encode_ms_mean=round(encoder.seconds / max(1, encoder.calls) * 1e3, 3),
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


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per source and mode: median processed fraction, the median of (mode - off) within the same round (paired, so
    a change of machine load between rounds cancels out), extra process CPU, hook and encode cost."""
    out: dict[str, Any] = {}
    for src in dict.fromkeys(r["source"] for r in rows):
        off = {r["round"]: r for r in rows if r["source"] == src and r["mode"] == "off"}
        out[src] = {}
        for mode in MODES:
            rs = [r for r in rows if r["source"] == src and r["mode"] == mode]
            d = {"processed_median": round(float(np.median([r["processed_mean"] for r in rs])), 4),
                 "cpu_s_per_s_median": round(float(np.median([r["process_cpu_s_per_s"] for r in rs])), 3)}
            if mode != "off":
                d["processed_minus_off_median"] = round(float(np.median(
                    [r["processed_mean"] - off[r["round"]]["processed_mean"] for r in rs])), 4)
                d["cpu_minus_off_median"] = round(float(np.median(
                    [r["process_cpu_s_per_s"] - off[r["round"]]["process_cpu_s_per_s"] for r in rs])), 3)
                d["hooks_us_per_frame_median"] = round(float(np.median([r["hooks_us_per_frame"] for r in rs])), 1)
                if any(r["jpeg_encodes"] for r in rs):
                    d["encode_ms_mean"] = round(float(np.median([r["encode_ms_mean"] for r in rs if r["jpeg_encodes"]])),
                                                3)
                    d["encodes_per_camera_s"] = round(float(np.median([r["encodes_per_camera_s"] for r in rs])), 2)
            out[src][mode] = d
    return out


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "cost.json", out / "cost.md", out / "cost.png"]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n")
    md = ["# Dashboard cost: frames processed with and without pages watching", "",
          f"Command: `{doc['command']}`  ", f"Machine: {doc['machine']}  ",
          f"Load before: `{doc['load_before']}`  ", f"Load after: `{doc['load_after']}`  ", "",
          f"Sources: `demo` = {doc['streams']['demo']} paced demo stream (176x144, 30 fps); `720p` = "
          f"{doc['streams']['720p']} paced 1280x720 30 fps streams (carphone upscaled, looped). Bundled demo model "
          f"with BlazeFace, {doc['seconds']:g} s per row, the four modes interleaved in each of {doc['rounds']} rounds, their order rotated every round. "
          f"*processed* = frames decided / frames a 30 fps camera offers in the run time; *CPU* = CPU seconds per "
          f"second of the whole watch process (pipeline, readers and HTTP server threads; the pages are other "
          f"processes); *hooks* = CPU time of the pipeline thread spent in the dashboard's hooks per decided frame.", "",
          "## Summary (medians over rounds; differences paired with the same round's `off` row)", "",
          "| source | mode | processed | vs off | CPU s/s | CPU vs off | hooks µs/frame | JPEG encodes /camera/s | ms per encode |",
          "|---|---|---|---|---|---|---|---|---|"]
    for src, modes in doc["summary"].items():
        for mode, d in modes.items():
            md.append(f"| {src} | {mode} | {d['processed_median']:.3f} | "
                      f"{d.get('processed_minus_off_median', 0):+.3f} | {d['cpu_s_per_s_median']:.2f} | "
                      f"{d.get('cpu_minus_off_median', 0):+.2f} | {d.get('hooks_us_per_frame_median', '–')} | "
                      f"{d.get('encodes_per_camera_s', '–')} | {d.get('encode_ms_mean', '–')} |")
    e = doc.get("encode_720p")
    if e:
        md += ["", f"One newest-frame JPEG from a {e['frame']} frame (downscaled to {e['jpeg_width']} wide, boxes drawn): "
                   f"median {e['ms_median']} ms ({e['repeats']} repeats, one thread)."]
    md += ["", "## Rows", "", "| round | source | mode | processed (mean) | processed (min) | p50 ms | p99 ms | CPU s/s | "
                               "hooks µs/frame | encodes | JPEGs served |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        md.append(f"| {r['round']} | {r['source']} | {r['mode']} | {r['processed_mean']:.3f} | {r['processed_min']:.3f} "
                  f"| {r['p50_ms']} | {r['p99_ms']} | {r['process_cpu_s_per_s']} | {r.get('hooks_us_per_frame', '–')} "
                  f"| {r.get('jpeg_encodes', '–')} | {r.get('jpegs_served', '–')} |")
    paths[1].write_text("\n".join(md) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.4))
        modes = list(MODES)
        width = 0.8 / max(1, len(doc["summary"]))
        for k, (src, sm) in enumerate(doc["summary"].items()):
            xs = [i + (k - (len(doc["summary"]) - 1) / 2) * width for i in range(len(modes))]
            ax.bar(xs, [sm[m]["processed_median"] * 100 for m in modes], width, label=f"{doc['streams'][src]} x {'demo 176x144' if src == 'demo' else src} (median)")
            for x, m in zip(xs, modes):
                pts = [r["processed_mean"] * 100 for r in doc["rows"] if r["source"] == src and r["mode"] == m]
                ax.plot([x] * len(pts), pts, "k.", ms=4)
        ax.set_xticks(range(len(modes)), modes)
        ax.set_ylabel("frames processed (% of offered)")
        ax.set_title("demo model (EfficientNet-Lite0 INT8): dashboard off / idle / watched; dots = rounds")
        ax.title.set_fontsize(9)
        ax.legend(loc="lower right", fontsize=8)
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
    ap.add_argument("--sources", default="demo,720p", help="demo (the paced demo stream) and/or 720p (footage)")
    ap.add_argument("--streams-720p", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.client:
        print(json.dumps(page_client(args.client, args.cameras.split(","), args.seconds)))
        return 0
    kinds = [k for k in args.sources.split(",") if k]
    bad = set(kinds) - {"demo", "720p"}
    if bad:
        raise SystemExit(f"--sources {args.sources}: unknown {sorted(bad)}; use demo and/or 720p")
    video = None
    if "720p" in kinds:
        from fakewatch.benchmarks.face_media import carphone, upscaled

        video = upscaled(carphone(), "720p", 20.0)
    streams = {"demo": 1, "720p": args.streams_720p}
    cmd = "python -m fakewatch.benchmarks.dashboard_cost " + " ".join(argv if argv is not None else sys.argv[1:])
    doc: dict[str, Any] = {"command": cmd.strip(), "machine": f"{platform.node()} {platform.processor() or ''} "
                                                              f"{os.cpu_count()} CPUs".strip(),
                           "streams": streams, "seconds": args.seconds, "rounds": args.rounds,
                           "load_before": _load(), "rows": []}
    from tqdm import tqdm

    # the mode order rotates every round, so no mode always runs first (or right after the 4-page clients)
    modes = list(MODES)
    plan = [(rnd, kind, mode) for rnd in range(1, args.rounds + 1) for kind in kinds
            for mode in modes[(rnd - 1) % len(modes):] + modes[:(rnd - 1) % len(modes)]]
    for rnd, kind, mode in tqdm(plan, desc="dashboard cost", unit="row"):
        r = row(kind, video, streams[kind], args.seconds, MODES[mode])
        r["round"] = rnd
        doc["rows"].append(r)
        tqdm.write(f"round {rnd} {kind:4s} {mode:8s}: processed {r['processed_mean']:.3f}, CPU "
                   f"{r['process_cpu_s_per_s']:.2f} s/s, hooks {r.get('hooks_us_per_frame', '-')} us/frame, "
                   f"encodes/cam/s {r.get('encodes_per_camera_s', '-')}")
    doc["load_after"] = _load()
    doc["summary"] = summarize(doc["rows"])
    doc["encode_720p"] = encode_cost(video) if video is not None else None
    for p in write(doc, args.output):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
