"""Batch shaping shared by the CPU runners: even shards for the throughput mode, padding for fixed-batch exports."""
from __future__ import annotations

import os

import numpy as np


def pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    """``x`` with zero rows appended up to ``rows`` (a fixed-batch export takes exactly that many; callers keep
    only the first ``len(x)`` outputs)."""
    if len(x) >= rows:
        return x
    return np.concatenate([x, np.zeros((rows - len(x), *x.shape[1:]), x.dtype)])


def shard_bounds(n: int, streams: int) -> list[tuple[int, int]]:
    """Split ``n`` rows into at most ``streams`` contiguous, non-empty shards whose sizes differ by at most one."""
    k = max(1, min(int(streams), n))
    base, extra = divmod(n, k)
    bounds, start = [], 0
    for i in range(k):
        end = start + base + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def resolve_streams(streams: int | str, backend: str = "onnxruntime") -> int:
    """``streams``: a count >= 1, or "auto" = one per CPU core this process may use."""
    if streams == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    try:
        value = int(streams)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise ValueError(f"{backend} streams must be a count >= 1 or 'auto', got {streams!r}")
    return value
