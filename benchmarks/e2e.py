"""End-to-end rows (the real ``watch`` pipeline on unpaced generated files) and the naive-loop baseline.

For each e2e variant: the naive loop runs first on the same file, then the pipeline with 1..N parallel sources of
that file; each e2e row carries the model-only throughput of the same variant/backend/precision/batch (measured in
this run, right after the e2e row, at the batch the pipeline really ran) and the ratios.
Full-frame ROI (the artifacts' contract): the face detector is not what is measured here.
"""
from __future__ import annotations

import importlib.util
import traceback
from typing import TYPE_CHECKING, Any, Iterator

from fakewatch.benchmarks.artifacts import ArtifactCache, Unavailable
from fakewatch.benchmarks.media import synthetic_video
from fakewatch.benchmarks.model_bench import ModelCase, measure_model_case
from fakewatch.benchmarks.schema import new_row

if TYPE_CHECKING:
    from fakewatch.benchmarks.sweep import BenchConfig


def _model_only(cfg: "BenchConfig", cache: ArtifactCache, variant: str, batch: int) -> dict[str, Any]:
    """Model-only row of the same variant/backend/precision/batch, measured right next to the e2e row.

    Not reused from the sweep: on a shared machine the load changes within minutes, and a ratio is only meaningful
    between two measurements taken under the same conditions.
    """
    return measure_model_case(cache, ModelCase(variant, cfg.e2e_backend, cfg.e2e_precision, batch),
                              warmup=cfg.warmup, iters=cfg.iters, max_seconds=cfg.max_seconds, isolate=cfg.isolate,
                              debug=cfg.debug)


def run_pipeline_rows(cfg: "BenchConfig", cache: ArtifactCache) -> Iterator[dict[str, Any]]:
    video = synthetic_video(cache.root / "media", frames=cfg.e2e_frames)
    for variant in cfg.e2e_variants:
        naive_fps = None
        if cfg.naive:
            row = _guard("naive", variant, lambda: _naive(cache, variant, video), cfg.debug)
            naive_fps = row["naive_fps"] if row["status"] == "ok" else None
            yield row
        if not cfg.e2e:
            continue
        for n_sources in cfg.e2e_sources:
            yield _guard("e2e", variant, lambda: _e2e(cfg, cache, variant, video, n_sources, naive_fps),
                         cfg.debug, sources=n_sources, backend=cfg.e2e_backend, precision=cfg.e2e_precision)


def _guard(kind: str, variant: str, fn, debug: bool, **fields: Any) -> dict[str, Any]:
    try:
        return fn()
    except Unavailable as exc:
        return new_row(kind, variant=variant, status="skipped", reason=str(exc), **fields)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        return new_row(kind, variant=variant, status="error", reason=f"{type(exc).__name__}: {exc}", **fields)


def _naive(cache: ArtifactCache, variant: str, video) -> dict[str, Any]:
    if importlib.util.find_spec("torch") is None:
        raise Unavailable("naive loop: torch not installed")
    from fakewatch.benchmarks.worker import run_isolated

    # in its own process like every other row: same conditions for the baseline and the pipeline
    return run_isolated({"job": "naive", "checkpoint": str(cache.torch_checkpoint(variant)), "video": str(video)},
                        timeout_s=900)


def _e2e(cfg: "BenchConfig", cache: ArtifactCache, variant: str, video, n_sources: int,
         naive_fps: float | None) -> dict[str, Any]:
    if importlib.util.find_spec("fakewatch.runtime.pipeline") is None:
        raise Unavailable("e2e: fakewatch.runtime.pipeline not available yet")
    from fakewatch.benchmarks.worker import run_isolated

    # --e2e-batch None = the watch default ("auto": one frame per source per batch, like nvstreammux)
    max_batch = cfg.e2e_batch or n_sources
    artifact = cache.artifact(variant, cfg.e2e_backend, cfg.e2e_precision, max_batch)
    row = run_isolated({"job": "e2e", "artifact": str(artifact), "backend": cfg.e2e_backend,
                        "sources": [str(video)] * n_sources, "batch": cfg.e2e_batch}, timeout_s=900)
    # "Same batch" = the batch the pipeline really ran (its batcher closes a batch once every source gave a frame,
    # so the mean batch, not --e2e-batch, is what inference saw); measured right after, under the same load.
    ref_batch = max(1, int(round(row.get("mean_batch") or 1)))
    model = _model_only(cfg, cache, variant, ref_batch)
    note = f"model-only reference: batch {ref_batch} (pipeline mean batch {row.get('mean_batch') or 0:.2f})"
    if model["status"] == "ok":
        row["model_only_ips"] = model["throughput_ips"]
        row["e2e_ratio"] = row["throughput_ips"] / model["throughput_ips"]
    else:
        note += f", not measured: {model['reason']}"
    row["note"] = f"{row.get('note') or ''}; {note}".lstrip("; ")
    if naive_fps:
        row["naive_fps"] = naive_fps
        row["speedup_vs_naive"] = row["throughput_ips"] / naive_fps
    return row
