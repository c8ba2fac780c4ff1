"""A fixed-size streaming histogram with log-spaced buckets: constant memory however long a run lasts.

Used for per-stage latency (runtime/latency.py) and shaped like a Prometheus histogram (upper bounds ``le`` +
counts + sum), so a metrics exporter can publish the same object without keeping samples of its own.

Accuracy: with ``per_decade`` buckets per factor of 10, a bucket spans a factor ``10 ** (1 / per_decade)``
(20 per decade: 12 %); percentiles interpolate inside the bucket and are clamped to the observed min/max, so the
error is a fraction of one bucket width. Values above ``hi`` land in the +Inf bucket and report the observed max.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Iterable, Sequence


def log_bounds(lo: float, hi: float, per_decade: int) -> tuple[float, ...]:
    """Bucket upper bounds from ``lo`` to at least ``hi``, ``per_decade`` per factor of 10 (rounded to 6 digits)."""
    if not (0 < lo < hi) or per_decade < 1:
        raise ValueError(f"log_bounds needs 0 < lo < hi and per_decade >= 1, got lo={lo}, hi={hi}, "
                         f"per_decade={per_decade}")
    n = math.ceil(math.log10(hi / lo) * per_decade)
    return tuple(float(f"{lo * 10 ** (i / per_decade):.6g}") for i in range(n + 1))


@dataclass
class LogHistogram:
    """Counts per bucket (``counts[i]`` = values in ``(bounds[i-1], bounds[i]]``, the last one = +Inf)."""

    lo: float = 0.01            # ms: 10 µs
    hi: float = 120_000.0       # ms: 2 min; slower values go to +Inf
    per_decade: int = 20
    bounds: tuple[float, ...] = field(init=False)
    counts: list[int] = field(init=False)
    count: int = field(init=False, default=0)
    sum: float = field(init=False, default=0.0)
    min: float = field(init=False, default=math.inf)
    max: float = field(init=False, default=-math.inf)

    def __post_init__(self) -> None:
        self.bounds = log_bounds(self.lo, self.hi, self.per_decade)
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """O(log buckets), no allocation: cheap enough for the inference thread."""
        if value != value:      # NaN: ignore rather than poison sum/min/max
            return
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def merge(self, other: "LogHistogram") -> "LogHistogram":
        if other.bounds != self.bounds:
            raise ValueError("cannot merge histograms with different buckets")
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def copy(self) -> "LogHistogram":
        h = LogHistogram(self.lo, self.hi, self.per_decade)
        return h.merge(self)

    def quantile(self, q: float) -> float:
        """Value below which a fraction ``q`` (0..1) of observations fall; NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile q must be in [0, 1], got {q}")
        if self.count == 0:
            return math.nan
        rank = q * (self.count - 1)     # numpy's 'linear' convention: rank 0 = min, rank n-1 = max
        k = math.floor(rank)
        lo = self._order_stat(k)
        return lo if rank == k else lo + (rank - k) * (self._order_stat(k + 1) - lo)

    def _order_stat(self, k: int) -> float:
        """Estimate of the k-th smallest value: the bucket's values taken as evenly spread inside it."""
        if k <= 0:
            return self.min
        if k >= self.count - 1:
            return self.max
        seen = 0
        for i, c in enumerate(self.counts):
            if c and seen + c > k:
                lower = max(self.bounds[i - 1] if i > 0 else self.min, self.min)
                upper = min(self.bounds[i] if i < len(self.bounds) else self.max, self.max)
                return lower + (upper - lower) * (k - seen + 0.5) / c
            seen += c
        return self.max

    def percentiles(self, ps: Sequence[float], ndigits: int = 3) -> dict[str, float]:
        """``{"p50": ..., ...}`` like numpy.percentile on the raw values, within one bucket; one pass over the
        buckets for all of them (status records ask for 3 percentiles x 8 stages x every stream)."""
        if self.count == 0:
            return {f"p{p:g}": math.nan for p in ps}
        ranks = {p: (p / 100) * (self.count - 1) for p in ps}
        if not all(0.0 <= r <= self.count - 1 for r in ranks.values()):
            raise ValueError(f"percentiles must be in [0, 100], got {list(ps)}")
        want = sorted({k for r in ranks.values() for k in (math.floor(r), min(math.floor(r) + 1, self.count - 1))})
        stats = dict(zip(want, self._order_stats(want)))
        out = {}
        for p, r in ranks.items():
            k = math.floor(r)
            lo = stats[k]
            v = lo if r == k else lo + (r - k) * (stats[min(k + 1, self.count - 1)] - lo)
            out[f"p{p:g}"] = round(v, ndigits)
        return out

    def _order_stats(self, ks: Sequence[int]) -> list[float]:
        """:meth:`_order_stat` for ascending ``ks`` in one walk over the buckets."""
        out, i, seen = [], 0, 0
        for k in ks:
            if k <= 0:
                out.append(self.min)
                continue
            if k >= self.count - 1:
                out.append(self.max)
                continue
            while seen + self.counts[i] <= k:
                seen += self.counts[i]
                i += 1
            c = self.counts[i]
            lower = max(self.bounds[i - 1] if i > 0 else self.min, self.min)
            upper = min(self.bounds[i] if i < len(self.bounds) else self.max, self.max)
            out.append(lower + (upper - lower) * (k - seen + 0.5) / c)
        return out

    def cumulative(self) -> list[tuple[float, int]]:
        """Prometheus-style ``(le, cumulative count)`` pairs, ending with ``(inf, count)``."""
        out, run = [], 0
        for le, c in zip((*self.bounds, math.inf), self.counts):
            run += c
            out.append((le, run))
        return out

    @classmethod
    def of(cls, values: Iterable[float], **kw: float) -> "LogHistogram":
        h = cls(**kw)
        for v in values:
            h.observe(float(v))
        return h
