"""Model-only rows: one (variant, backend, precision, batch) -> latency percentiles, throughput, memory, size, MACs."""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from fakewatch.benchmarks.artifacts import ArtifactCache, Unavailable
from fakewatch.benchmarks.measure import PeakRss, percentiles_ms, time_calls
from fakewatch.benchmarks.runners import backend_unavailable_reason, open_runner
from fakewatch.benchmarks.schema import new_row


@dataclass(frozen=True)
class ModelCase:
    variant: str
    backend: str
    precision: str
    batch: int
    streams: str = "1"          # CPU throughput streams: "1" = one run per batch, "N" or "auto"

    @property
    def label(self) -> str:
        s = "" if self.streams == "1" else f" s{self.streams}"
        return f"{self.variant} {self.backend}/{self.precision} b{self.batch}{s}"

    def runner_options(self) -> dict[str, Any]:
        if self.streams == "1":
            return {}
        return {"streams": "auto" if self.streams == "auto" else int(self.streams)}


def _static_fields(cache: ArtifactCache, case: ModelCase) -> dict[str, Any]:
    from fakewatch.core.variants import resolve_variant

    v = resolve_variant(case.variant)
    return dict(variant=v.name, timm_name=v.timm_name, input_size=f"{v.input_size}x{v.input_size}",
                backend=case.backend, precision=case.precision, batch=case.batch,
                streams=int(case.streams) if case.streams.isdigit() else None,   # "auto": resolved by the runner
                note=None if case.streams == "1" else f"streams {case.streams}")


def run_model_case(cache: ArtifactCache, case: ModelCase, *, warmup: int, iters: int, max_seconds: float | None,
                   on_iter: Callable[[], None] | None = None, debug: bool = False) -> dict[str, Any]:
    """Measure one case. Missing pieces give a ``skipped`` row, failures an ``error`` row; never a made-up number."""
    fields = _static_fields(cache, case)
    reason = backend_unavailable_reason(case.backend)
    if reason:  # before building artifacts: no point exporting for a backend that cannot run here
        return new_row("model", **fields, status="skipped", reason=reason)
    try:
        artifact = cache.artifact(case.variant, case.backend, case.precision, case.batch)
        meta = cache.meta(case.variant)
        runner, impl = open_runner(artifact, case.backend, **case.runner_options())
    except Unavailable as exc:
        return new_row("model", **fields, status="skipped", reason=str(exc))
    except Exception as exc:  # an export/quantization failure is a result worth reporting, not a crash
        if debug:
            traceback.print_exc()
        return new_row("model", **fields, status="error", reason=f"{type(exc).__name__}: {exc}")

    h, w = runner.spec.input_size
    x = np.random.default_rng(0).standard_normal((case.batch, 3, h, w)).astype(np.float32)
    try:
        with PeakRss() as rss:
            with runner:
                result = time_calls(lambda: runner.infer(x), batch=case.batch, warmup=warmup, iters=iters,
                                    max_seconds=max_seconds, on_iter=on_iter)
    except Unavailable as exc:
        return new_row("model", **fields, status="skipped", reason=str(exc))
    except Exception as exc:
        if debug:
            traceback.print_exc()
        # BackendError at activate (e.g. a provider missing) is "cannot run here", anything else a real error
        from fakewatch.runtime.backends.base import BackendError
        status = "skipped" if isinstance(exc, BackendError) else "error"
        return new_row("model", **fields, status=status, reason=f"{type(exc).__name__}: {exc}", runner_impl=impl)

    pct = percentiles_ms(result.latencies_ms)
    return new_row(
        "model", **{**fields, "streams": getattr(runner, "streams", 1)}, runner_impl=impl, warmup=warmup,
        iters=result.iters,
        stopped_by_time_budget=result.stopped_by_budget,
        latency_p50_ms=pct["p50"], latency_p90_ms=pct["p90"], latency_p99_ms=pct["p99"],
        latency_mean_ms=pct["mean"], throughput_ips=result.throughput,
        peak_rss_mb=rss.peak_mb, rss_delta_mb=rss.delta_mb, size_mb=artifact.stat().st_size / 2**20,
        params=int(meta["params"]), gmacs=None if meta["macs"] is None else meta["macs"] / 1e9)


def measure_model_case(cache: ArtifactCache, case: ModelCase, *, warmup: int, iters: int,
                       max_seconds: float | None, isolate: bool = True, debug: bool = False) -> dict[str, Any]:
    """:func:`run_model_case` in a fresh worker process (see :mod:`fakewatch.benchmarks.worker` for why).

    Artifacts (export, quantization) are built here in the parent first, so the worker only loads and times and
    a missing piece becomes a skipped row without starting a process.
    """
    if not isolate:
        return run_model_case(cache, case, warmup=warmup, iters=iters, max_seconds=max_seconds, debug=debug)
    fields = _static_fields(cache, case)
    reason = backend_unavailable_reason(case.backend)
    if reason:
        return new_row("model", **fields, status="skipped", reason=reason)
    try:
        cache.artifact(case.variant, case.backend, case.precision, case.batch)
        cache.meta(case.variant)
    except Unavailable as exc:
        return new_row("model", **fields, status="skipped", reason=str(exc))
    except Exception as exc:
        if debug:
            traceback.print_exc()
        return new_row("model", **fields, status="error", reason=f"{type(exc).__name__}: {exc}")
    from fakewatch.benchmarks.worker import run_isolated

    payload = dict(job="model", workdir=str(cache.root), variant=case.variant, backend=case.backend,
                   precision=case.precision, batch=case.batch, streams=case.streams, warmup=warmup, iters=iters,
                   max_seconds=max_seconds, debug=debug)
    # generous: warm-up + timed loop are capped by max_seconds, loading a B7 takes a few seconds
    timeout = 300.0 + 3 * (max_seconds or 600.0)
    try:
        return run_isolated(payload, timeout)
    except RuntimeError as exc:
        return new_row("model", **fields, status="error", reason=str(exc))
