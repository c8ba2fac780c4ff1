"""Timing primitives: percentiles, a peak-RSS sampler, and the warm-up-then-iterate loop for a Runner."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


def percentiles_ms(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean/min of latencies in ms (linear interpolation, numpy's default)."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        nan = float("nan")
        return {"p50": nan, "p90": nan, "p99": nan, "mean": nan, "min": nan}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(a.mean()), "min": float(a.min())}


def current_rss_bytes() -> int:
    try:
        import psutil
        return int(psutil.Process().memory_info().rss)
    except ImportError:  # Linux fallback without psutil
        with open("/proc/self/statm") as fh:
            import os
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples this process's resident memory in a background thread; ``peak`` is the maximum seen.

    Process RSS is what the OS must provide for the whole benchmark process (interpreter + libraries + model), so
    ``baseline`` (RSS when the sampler started, before the model was loaded) is kept too: ``peak - baseline`` is
    what loading and running this model added. ru_maxrss cannot be used per row: it never goes down in a process.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakRss":
        self.baseline = self.peak = current_rss_bytes()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, current_rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


@dataclass
class LoopResult:
    latencies_ms: list[float]
    wall_s: float          # wall time of the timed iterations only (warm-up excluded)
    batch: int
    warmup: int
    stopped_by_budget: bool

    @property
    def iters(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Images per second over the timed loop (batch x iterations / wall time)."""
        return self.batch * self.iters / self.wall_s if self.wall_s > 0 else float("nan")


def time_calls(fn: Callable[[], object], *, batch: int, warmup: int, iters: int, max_seconds: float | None,
               min_iters: int = 5, on_iter: Callable[[], None] | None = None) -> LoopResult:
    """Call ``fn`` ``warmup`` times untimed, then up to ``iters`` times timed.

    ``max_seconds`` caps the timed loop (after at least ``min_iters`` calls) so slow models (B7 at 600 px) finish in
    bounded time; the result says whether the budget, not ``iters``, stopped it. Warm-up is capped at a quarter of
    the budget too (but always runs at least once: the first call pays for allocation and kernel selection).
    """
    t_warm = time.perf_counter()
    for i in range(warmup):
        fn()
        if max_seconds is not None and time.perf_counter() - t_warm >= max_seconds / 4:
            warmup = i + 1
            break
    latencies: list[float] = []
    stopped = False
    t_start = time.perf_counter()
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1e3)
        if on_iter is not None:
            on_iter()
        if max_seconds is not None and i + 1 >= min_iters and t1 - t_start >= max_seconds and i + 1 < iters:
            stopped = True
            break
    wall = time.perf_counter() - t_start
    return LoopResult(latencies, wall, batch, warmup, stopped)
