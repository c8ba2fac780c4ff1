"""The baseline a user writes first: OpenCV read -> per-frame torch eager EfficientNet, batch 1, one thread of
control, preprocessing in numpy/torch. The pipeline's speedup over it is measured in the same run, on the same
file and the same weights.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fakewatch.benchmarks.measure import PeakRss, percentiles_ms
from fakewatch.benchmarks.schema import new_row


def naive_loop(checkpoint: str | Path, video: str | Path, *, warmup: int = 3) -> dict[str, Any]:
    """Run the naive loop over every frame of ``video``; returns a ``naive`` result row."""
    import cv2
    import numpy as np
    import torch

    from fakewatch.core.checkpoint import load_checkpoint

    with PeakRss() as rss:
        model, spec, _ = load_checkpoint(checkpoint)
        model.eval()
        h, w = spec.input_size
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)
        with torch.no_grad():  # warm-up: the user's first frames are slow too, but we compare steady state
            for _ in range(warmup):
                model(torch.zeros(1, 3, h, w))

        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise RuntimeError(f"naive loop: OpenCV cannot open {video}")
        latencies: list[float] = []
        scores: list[float] = []
        frame_size = None
        t_start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            ok, frame = cap.read()
            if not ok:
                break
            frame_size = frame_size or f"{frame.shape[1]}x{frame.shape[0]}"
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
            x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
            x = (x - mean) / std
            with torch.no_grad():
                logit = model(x.unsqueeze(0))
            scores.append(float(torch.sigmoid(logit[0, 0])))
            latencies.append((time.perf_counter() - t0) * 1e3)
        wall = time.perf_counter() - t_start
        cap.release()
    if not latencies:
        raise RuntimeError(f"naive loop: no frames decoded from {video}")
    pct = percentiles_ms(latencies)
    fps = len(latencies) / wall
    return new_row(
        "naive", variant=spec.variant, timm_name=spec.timm_name, input_size=f"{h}x{w}", backend="torch",
        precision="fp32", batch=1, runner_impl="OpenCV read + torch eager per frame (fakewatch.benchmarks.naive)",
        warmup=warmup, iters=len(latencies), latency_p50_ms=pct["p50"], latency_p90_ms=pct["p90"],
        latency_p99_ms=pct["p99"], latency_mean_ms=pct["mean"], throughput_ips=fps, sources=1,
        frames=len(latencies), frame_size=frame_size, capture_to_alert_p50_ms=pct["p50"],
        capture_to_alert_p99_ms=pct["p99"],
        naive_fps=fps, peak_rss_mb=rss.peak_mb, rss_delta_mb=rss.delta_mb)
