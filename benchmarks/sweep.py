"""Run a whole benchmark: the model-only sweep, then end-to-end and naive-loop rows, then write every file."""
from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fakewatch.benchmarks.artifacts import ArtifactCache
from fakewatch.benchmarks.env import environment, load_average_1m
from fakewatch.benchmarks.model_bench import ModelCase, measure_model_case
from fakewatch.benchmarks.report import E2E_VIEW, MODEL_VIEW, fmt, print_table, skipped_lines, write_results

QUICK_VARIANTS = ("b0", "lite0")
FULL_VARIANTS = tuple(f"b{i}" for i in range(8)) + tuple(f"lite{i}" for i in range(5))
ALL_BACKENDS = ("onnxruntime", "openvino", "torch", "tensorrt")
STREAMS_BACKENDS = ("onnxruntime", "openvino")   # runners with a ``streams`` option (CPU throughput mode)
ALL_PRECISIONS = ("fp32", "int8", "fp16")


@dataclass
class BenchConfig:
    name: str = "quick"
    variants: tuple[str, ...] = QUICK_VARIANTS
    backends: tuple[str, ...] = ALL_BACKENDS
    precisions: tuple[str, ...] = ALL_PRECISIONS
    batches: tuple[int, ...] = (1, 8)
    streams: tuple[str, ...] = ("1",)          # CPU throughput streams ("1", "2", "auto") for STREAMS_BACKENDS
    warmup: int = 5
    iters: int = 50
    max_seconds: float | None = 6.0           # per model row (timed loop); warm-up gets a quarter of it
    slow_variant_max_seconds: float | None = None   # budget for variants >= 456 px (b5-b7) when set
    e2e: bool = True
    naive: bool = True
    e2e_variants: tuple[str, ...] = ("b0",)
    e2e_backend: str = "onnxruntime"
    e2e_precision: str = "fp32"
    e2e_sources: tuple[int, ...] = (1, 2)
    e2e_batch: int | None = None             # None = auto (watch's default: number of sources)
    e2e_frames: int = 200
    workdir: str | None = None
    out_dir: str = ""
    prepare_only: bool = False                # build (export/quantize) the artifacts, measure nothing
    isolate: bool = True                      # one worker process per row (clean RSS, no thread-pool interference)
    debug: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def model_cases(cfg: BenchConfig) -> list[ModelCase]:
    """variant x backend x precision x batch, and x streams for the backends with a CPU throughput mode."""
    return [ModelCase(v, b, p, n, s) for v, b, p, n in
            itertools.product(cfg.variants, cfg.backends, cfg.precisions, cfg.batches)
            for s in (cfg.streams if b in STREAMS_BACKENDS else ("1",))]


def _row_budget(cfg: BenchConfig, variant: str) -> float | None:
    from fakewatch.core.variants import resolve_variant

    if cfg.slow_variant_max_seconds is not None and resolve_variant(variant).input_size >= 456:
        return cfg.slow_variant_max_seconds
    return cfg.max_seconds


def _row_line(r: dict[str, Any]) -> str:
    what = f"{r['kind']:5} {r['variant']:6} {r['backend'] or '':11} {r['precision'] or '':4} b{r['batch'] or ''}"
    if r["kind"] != "model" and r.get("sources"):
        what += f" x{r['sources']} src"
    if r["kind"] == "model" and (r.get("streams") or 1) > 1:
        what += f" x{r['streams']} streams"
    if r["status"] != "ok":
        return f"{what:42} {r['status']}: {r['reason']}"
    line = (f"{what:42} p50 {fmt(r['latency_p50_ms'])} ms  p99 {fmt(r['latency_p99_ms'])} ms  "
            f"{fmt(r['throughput_ips'])} /s")
    if r.get("e2e_ratio") is not None:
        line += f"  e2e/model {r['e2e_ratio']:.2f}"
    if r.get("speedup_vs_naive") is not None:
        line += f"  vs naive {r['speedup_vs_naive']:.2f}x"
    return line


def prepare(cfg: BenchConfig) -> int:
    """Export/quantize every artifact the planned rows need (slow for B5-B7), so a later timed run only times."""
    from tqdm import tqdm

    from fakewatch.benchmarks.artifacts import Unavailable
    from fakewatch.benchmarks.runners import backend_unavailable_reason

    cache = ArtifactCache(cfg.workdir)
    needed = list(dict.fromkeys((c.variant, c.backend, c.precision) for c in model_cases(cfg)))
    failures = 0
    for variant, backend, precision in tqdm(needed, desc="preparing artifacts", unit="artifact", file=sys.stderr):
        if backend_unavailable_reason(backend):
            continue
        try:
            path = cache.artifact(variant, backend, precision)
            print(f"ready    {variant} {backend}/{precision}: {path}", file=sys.stderr)
        except Unavailable as exc:
            print(f"skipped  {variant} {backend}/{precision}: {exc}", file=sys.stderr)
        except Exception as exc:
            failures += 1
            print(f"FAILED   {variant} {backend}/{precision}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failures else 0


def run_bench(cfg: BenchConfig, argv: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Measure everything ``cfg`` asks for; returns (rows, written file paths)."""
    from tqdm import tqdm

    from fakewatch.benchmarks.artifacts import tools_fingerprint

    env = environment(argv)
    env["export_tools_fingerprint"] = tools_fingerprint()  # the artifact cache key (see artifacts.py)
    cache = ArtifactCache(cfg.workdir)
    cases = model_cases(cfg)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    print(f"fakewatch bench '{cfg.name}': {len(cases)} model-only case(s)"
          f"{', end-to-end' if cfg.e2e else ''}{', naive loop' if cfg.naive else ''}; "
          f"artifacts cached in {cache.root}; load avg {env['load_avg_1m_start']}", file=sys.stderr)
    with tqdm(total=len(cases), desc="model-only", unit="case", file=sys.stderr, dynamic_ncols=True) as bar:
        for case in cases:
            bar.set_postfix_str(case.label)
            row = measure_model_case(cache, case, warmup=cfg.warmup, iters=cfg.iters,
                                     max_seconds=_row_budget(cfg, case.variant), isolate=cfg.isolate,
                                     debug=cfg.debug)
            rows.append(row)
            bar.write(_row_line(row), file=sys.stderr)
            bar.update(1)
    if cfg.e2e or cfg.naive:
        from fakewatch.benchmarks.e2e import run_pipeline_rows

        for row in run_pipeline_rows(cfg, cache):
            rows.append(row)
            print(_row_line(row), file=sys.stderr)
    env["load_avg_1m_end"] = load_average_1m()
    env["wall_seconds"] = round(time.perf_counter() - t0, 1)
    summary = summarize(rows)
    paths = write_results(cfg.out_dir, rows, env, cfg.to_dict(), summary)
    print_table([r for r in rows if r["kind"] == "model"], MODEL_VIEW, "model only")
    pipe = [r for r in rows if r["kind"] != "model"]
    if pipe:
        print_table(pipe, E2E_VIEW, "end to end / naive loop")
    for line in skipped_lines(rows):
        print(line)
    for k, v in summary.items():
        print(f"{k}: {v}")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return rows, paths


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Headline numbers: real-time capability at batch 1 and the e2e / naive ratios."""
    out: dict[str, Any] = {}
    ok = [r for r in rows if r["kind"] == "model" and r["status"] == "ok"]
    for fps in (25, 30):
        groups: dict[str, list[str]] = {}
        for r in ok:
            # a stream at `fps` needs one inference per frame: batch-1 throughput must reach fps (every frame
            # scored, none dropped). Model only: decode/preprocess cost is in the e2e rows.
            if r["batch"] == 1 and r["throughput_ips"] is not None and r["throughput_ips"] >= fps:
                names = groups.setdefault(f"{r['backend']}/{r['precision']}", [])
                if r["variant"] not in names:     # once per variant, whatever --streams rows exist
                    names.append(r["variant"])
        out[f"sustain_{fps}fps_batch1"] = {k: v for k, v in groups.items()} or "none"
    for r in rows:
        if r["kind"] == "e2e" and r["status"] == "ok":
            key = f"e2e {r['variant']} {r['backend']}/{r['precision']} {r['sources']} source(s)"
            out[key] = (f"{fmt(r['throughput_ips'])} frames/s, e2e/model-only {fmt(r['e2e_ratio'])}, "
                        f"speedup vs naive {fmt(r['speedup_vs_naive'])}x")
        if r["kind"] == "naive" and r["status"] == "ok":
            out[f"naive {r['variant']}"] = f"{fmt(r['throughput_ips'])} frames/s"
    return out
