"""The streaming histogram: percentiles within a bucket of numpy's, constant memory, Prometheus-shaped buckets."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fakewatch.core.histogram import LogHistogram, log_bounds


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "bimodal"])
def test_percentiles_match_numpy_within_one_bucket(dist):
    rng = np.random.default_rng(1)
    values = {"lognormal": rng.lognormal(2.0, 1.0, 20_000),
              "uniform": rng.uniform(0.5, 40.0, 20_000),
              "bimodal": np.concatenate([rng.normal(5, 0.3, 15_000), rng.normal(80, 5, 5_000)])}[dist]
    h = LogHistogram.of(values)
    width = 10 ** (1 / h.per_decade) - 1           # relative width of one bucket (12 %)
    for p in (1, 50, 90, 99, 99.9):
        exact = float(np.percentile(values, p))
        assert h.quantile(p / 100) == pytest.approx(exact, rel=width / 2 + 0.01), p
    assert h.count == values.size and h.sum == pytest.approx(values.sum())
    one_pass = h.percentiles((1, 50, 90, 99, 99.9))                 # the status records' single walk
    assert one_pass == {f"p{p:g}": round(h.quantile(p / 100), 3) for p in (1, 50, 90, 99, 99.9)}
    assert h.quantile(0) == pytest.approx(values.min()) and h.quantile(1) == pytest.approx(values.max())


def test_memory_is_constant_and_out_of_range_values_are_kept():
    h = LogHistogram()
    n_buckets = len(h.counts)
    for v in (1e-6, 0.5, 3e5, float("nan")):        # below lo, normal, above hi (+Inf bucket), NaN ignored
        h.observe(v)
    for _ in range(100_000):
        h.observe(2.0)
    assert len(h.counts) == n_buckets and h.count == 100_003
    assert h.counts[0] == 1 and h.counts[-1] == 1 and h.max == 3e5
    assert h.quantile(1.0) == 3e5 and h.quantile(0.0) == 1e-6


def test_prometheus_buckets_merge_and_empty():
    a, b = LogHistogram.of([1.0, 2.0, 3.0]), LogHistogram.of([100.0])
    cum = a.copy().merge(b).cumulative()
    assert cum[-1] == (math.inf, 4) and all(x[1] <= y[1] for x, y in zip(cum, cum[1:]))
    assert next(c for le, c in cum if le >= 3.0) == 3            # le semantics: 3.0 counts in its own bucket
    assert math.isnan(LogHistogram().quantile(0.5))
    assert LogHistogram().percentiles((50,)) == {"p50": pytest.approx(float("nan"), nan_ok=True)}
    with pytest.raises(ValueError, match="different buckets"):
        a.merge(LogHistogram(per_decade=10))
    with pytest.raises(ValueError, match="0 < lo < hi"):
        log_bounds(5, 1, 10)
