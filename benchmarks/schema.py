"""The one row schema every result file uses (CSV columns, JSON row keys, Markdown tables).

Kinds of rows:
  ``model``  model-only timing of one (variant, backend, precision, batch)
  ``e2e``    the real ``watch`` pipeline on unpaced generated file source(s)
  ``naive``  the loop a user writes first: OpenCV read -> per-frame torch eager, batch 1
Columns that do not apply to a kind are empty (CSV) / null (JSON). ``status`` is ``ok``, ``skipped`` (with the
reason: a missing library or project piece) or ``error`` (with the exception message).
"""
from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 2   # 2: "streams" column

COLUMNS: tuple[str, ...] = (
    "kind", "variant", "timm_name", "input_size", "backend", "precision", "batch",
    "streams",                 # model rows: CPU throughput streams the runner used (1 = one run per batch)
    "status", "reason",
    "runner_impl", "warmup", "iters", "stopped_by_time_budget",
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms",
    "throughput_ips",          # images (model) or frames (e2e/naive) per second
    "peak_rss_mb", "rss_delta_mb", "size_mb", "params", "gmacs",
    # e2e / naive
    "sources", "frames", "frame_size", "mean_batch", "dropped", "capture_to_alert_p50_ms", "capture_to_alert_p99_ms",
    "model_only_ips",          # model-only throughput of the same variant/backend/precision/batch (same run)
    "e2e_ratio",               # e2e throughput / model_only_ips (goal >= 0.95)
    "naive_fps",               # naive loop fps on the same file (same run)
    "speedup_vs_naive",        # e2e fps / naive_fps (goal >= 3 for b0)
    "note",
)

KINDS = ("model", "e2e", "naive")
STATUSES = ("ok", "skipped", "error")

# Float columns rounded in files (timings are not meaningful beyond this)
_ROUND = {"latency_p50_ms": 3, "latency_p90_ms": 3, "latency_p99_ms": 3, "latency_mean_ms": 3,
          "throughput_ips": 2, "peak_rss_mb": 1, "rss_delta_mb": 1, "size_mb": 2, "gmacs": 3,
          "capture_to_alert_p50_ms": 2, "capture_to_alert_p99_ms": 2, "model_only_ips": 2, "e2e_ratio": 3,
          "naive_fps": 2, "speedup_vs_naive": 2, "mean_batch": 2}


def new_row(kind: str, **values: Any) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"row kind must be one of {KINDS}, got {kind!r}")
    unknown = sorted(set(values) - set(COLUMNS))
    if unknown:
        raise KeyError(f"unknown result column(s) {unknown}")
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row["kind"] = kind
    row["status"] = "ok"
    row.update(values)
    return row


def finalize(row: dict[str, Any]) -> dict[str, Any]:
    """Round floats, turn NaN into None (JSON has no NaN) and check the row against the schema."""
    out = {}
    for c in COLUMNS:
        v = row.get(c)
        if isinstance(v, float):
            if v != v:  # NaN
                v = None
            elif c in _ROUND:
                v = round(v, _ROUND[c])
        out[c] = v
    if out["status"] not in STATUSES:
        raise ValueError(f"row status must be one of {STATUSES}, got {out['status']!r}")
    if out["status"] != "ok" and not out["reason"]:
        raise ValueError("a skipped/error row needs a reason")
    return out
