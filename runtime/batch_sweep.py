"""Measure what --batch / --max-wait-ms do on this machine (how the defaults in runtime/batcher.py were chosen).

    python -m fakewatch.runtime.batch_sweep --model model.onnx [--sources 4] [--fps 25] [--waits 0,5,10,20,40]

Part 1 times the model alone per batch size (ms per batch and per image). Part 2 runs the real pipeline on N
generated live-paced sources for each max-wait and reports batch sizes, end-to-end latency, fps and drops. The ROI is
forced to the full frame so face detection does not blur the batching numbers.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def model_only(runner, batches: list[int], seconds: float = 1.5) -> list[dict]:
    h, w = runner.spec.input_size
    rows = []
    for b in batches:
        x = np.random.default_rng(0).standard_normal((b, 3, h, w)).astype(np.float32)
        for _ in range(2):
            runner.infer(x)
        times = []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end or len(times) < 5:
            runner.infer(x)
            times.append(runner.last_inference_ms)
        med = float(np.median(times))
        rows.append({"batch": b, "ms_per_batch": med, "ms_per_image": med / b, "images_per_s": 1e3 * b / med})
    return rows


def _video(path: Path, fps: float, seconds: float = 2.0) -> Path:
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (320, 240))
    rng = np.random.default_rng(0)
    for i in range(int(fps * seconds)):
        vw.write(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    vw.release()
    return path


def pipeline_sweep(model: Path, n_sources: int, fps: float, waits: list[float], seconds: float,
                   batch: int | None) -> list[dict]:
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.pipeline import Pipeline, WatchConfig
    from fakewatch.streams import open_source

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = _video(Path(tmp) / "clip.mp4", fps)
        for wait in waits:
            runner = load_runner(model)
            runner.spec = runner.spec.replace(roi="full")
            sources = [open_source(str(clip), f"cam{i}", loop=True) for i in range(n_sources)]
            cfg = WatchConfig(batch=batch or n_sources, max_wait_ms=wait, duration_s=seconds, status_interval_s=0)
            s = Pipeline(sources, runner, cfg).run()
            tot = s.overall["latency_ms"]["total"]
            frames = sum(st["frames"] for st in s.streams.values())
            dropped = sum(st["dropped"] for st in s.streams.values())
            rows.append({"max_wait_ms": wait, "mean_batch": s.batches()["mean_size"], "p50_ms": tot["p50"],
                         "p99_ms": tot["p99"], "batch_wait_p50_ms": s.overall["latency_ms"]["batch"]["p50"],
                         "fps_per_stream": frames / max(1e-9, s.duration_s) / n_sources,
                         "dropped_pct": 100.0 * dropped / max(1, frames + dropped)})
    return rows


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fakewatch.runtime.batch_sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--waits", default="0,5,10,20,40")
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=None, help="pipeline max batch (default: number of sources)")
    args = ap.parse_args(argv)
    from fakewatch.runtime.backends import load_runner

    with load_runner(args.model) as runner:
        print(f"model only ({args.model.name}, {runner.name}):")
        print(_table(model_only(runner, [int(b) for b in args.batches.split(",")])))
    print(f"\npipeline, {args.sources} live-paced sources at {args.fps:g} fps, {args.seconds:g} s each:")
    print(_table(pipeline_sweep(args.model, args.sources, args.fps, [float(w) for w in args.waits.split(",")],
                                args.seconds, args.batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
