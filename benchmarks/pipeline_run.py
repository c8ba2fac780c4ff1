"""One end-to-end row: the real ``fakewatch watch`` pipeline (``fakewatch.runtime.pipeline.Pipeline``) on unpaced
file sources.

Sources are ``open_source(path, pace=False)``: decoded as fast as possible and lossless (the reader waits for the
consumer instead of dropping), so every frame of every source is scored and frames/s is the pipeline's capacity.
The runner is activated and warmed up before the run (like the model-only rows), the rest is exactly what
``fakewatch watch`` does: reader threads decode, the consumer does ROI -> preprocess -> batcher -> runner ->
decision -> records. Capture->alert latency is the pipeline's own per-frame measurement (runtime/latency.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fakewatch.benchmarks.measure import PeakRss
from fakewatch.benchmarks.schema import new_row


def run_pipeline(artifact: str | Path, backend: str, videos: Sequence[str], *, batch: int | None,
                 warmup: int = 3, max_wait_ms: float | None = None) -> dict[str, Any]:
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.pipeline import Pipeline, WatchConfig
    from fakewatch.streams import open_source

    runner = load_runner(artifact, backend=backend)
    spec = runner.spec
    sources = [open_source(v, source_id=f"file{i}", pace=False) for i, v in enumerate(videos)]
    cfg_kwargs: dict[str, Any] = dict(batch=batch, status_interval_s=0.0)
    if max_wait_ms is not None:
        cfg_kwargs["max_wait_ms"] = max_wait_ms
    cfg = WatchConfig(**cfg_kwargs)
    max_batch = batch or len(videos)  # what WatchConfig(batch=None) resolves to for a full-frame model
    with PeakRss() as rss:
        runner.activate()
        x = np.zeros((max_batch, 3, *spec.input_size), np.float32)
        for _ in range(warmup):
            runner.infer(x)
        summary = Pipeline(sources, runner, cfg).run()
    frames = int(summary.overall["frames"])
    if frames == 0:
        raise RuntimeError(f"pipeline scored no frames ({summary.stop_reason}); events: {summary.events[-3:]}")
    total = summary.overall["latency_ms"].get("total", {})
    # per-stage p50s tell where the time between capture and alert goes (runtime/latency.py stage names)
    stages = ", ".join(f"{k} {v['p50']:.2f}" for k, v in summary.overall["latency_ms"].items()
                       if k != "total" and v.get("p50") is not None)
    b = summary.batches()
    first = sources[0]
    size = f"{first.width}x{first.height}" if getattr(first, "width", None) else None
    return new_row(
        "e2e", variant=spec.variant, timm_name=spec.timm_name, input_size=f"{spec.height}x{spec.width}",
        backend=backend, precision=spec.precision, batch=max_batch, runner_impl="fakewatch.runtime.pipeline.Pipeline",
        warmup=warmup, iters=b["count"], throughput_ips=frames / summary.duration_s, sources=len(videos),
        frames=frames, frame_size=size, mean_batch=b["mean_size"], dropped=int(summary.overall["dropped"]),
        capture_to_alert_p50_ms=total.get("p50"), capture_to_alert_p99_ms=total.get("p99"),
        peak_rss_mb=rss.peak_mb, rss_delta_mb=rss.delta_mb,
        note=f"ended: {summary.stop_reason}; stage p50 ms: {stages}")
