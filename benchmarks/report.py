"""Result files: results.csv, results.json, results.md and PNG plots (matplotlib, Agg), plus terminal tables."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

from fakewatch.benchmarks.schema import COLUMNS, SCHEMA_VERSION, finalize

# Columns shown in terminal / Markdown tables per row kind (the files hold all of them)
MODEL_VIEW = ("variant", "input_size", "backend", "precision", "batch", "streams", "status", "latency_p50_ms",
              "latency_p90_ms", "latency_p99_ms", "throughput_ips", "peak_rss_mb", "size_mb", "params", "gmacs",
              "iters")
E2E_VIEW = ("kind", "variant", "backend", "precision", "batch", "mean_batch", "sources", "frames", "status",
            "throughput_ips",
            "capture_to_alert_p50_ms", "capture_to_alert_p99_ms", "model_only_ips", "e2e_ratio", "naive_fps",
            "speedup_vs_naive")
_HEAD = {"latency_p50_ms": "p50 ms", "latency_p90_ms": "p90 ms", "latency_p99_ms": "p99 ms",
         "throughput_ips": "img|fr/s", "peak_rss_mb": "peak RSS MB", "size_mb": "size MB", "gmacs": "GMACs",
         "input_size": "input", "precision": "prec", "capture_to_alert_p50_ms": "cap→alert p50 ms",
         "capture_to_alert_p99_ms": "cap→alert p99 ms", "model_only_ips": "model-only img/s",
         "e2e_ratio": "e2e/model", "naive_fps": "naive fps", "speedup_vs_naive": "speedup vs naive"}


def fmt(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if column == "params" and isinstance(value, int):
        return f"{value / 1e6:.2f}M"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.01 else f"{value:.3g}"
    return str(value)


def table_rows(rows: Sequence[dict[str, Any]], view: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = [_HEAD.get(c, c) for c in view]
    body = [[fmt(r.get(c), c) for c in view] for r in rows]
    return header, body


def markdown_table(rows: Sequence[dict[str, Any]], view: Sequence[str]) -> str:
    header, body = table_rows(rows, view)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def text_table(rows: Sequence[dict[str, Any]], view: Sequence[str]) -> str:
    header, body = table_rows(rows, view)
    widths = [max(len(x) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)


def print_table(rows: Sequence[dict[str, Any]], view: Sequence[str], title: str) -> None:
    """A rich table on a terminal (when rich is installed), plain text otherwise (logs, pipes)."""
    import sys

    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    if Console is None or not sys.stdout.isatty():
        print(f"\n{title}\n{text_table(rows, view)}")
        return
    header, body = table_rows(rows, view)
    table = Table(title=title, show_lines=False)
    for h in header:
        table.add_column(h, overflow="fold")
    for row in body:
        table.add_row(*row)
    Console().print(table)


def skipped_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per distinct skip/error reason (with how many rows it covers)."""
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        if r["status"] != "ok":
            key = (r["status"], r["reason"])
            counts[key] = counts.get(key, 0) + 1
    return [f"{status} ({n} row{'s' if n > 1 else ''}): {reason}" for (status, reason), n in counts.items()]


# ---------------------------------------------------------------------- files
def write_results(out_dir: str | Path, rows: Sequence[dict[str, Any]], env: dict[str, Any],
                  config: dict[str, Any], summary: dict[str, Any]) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = [finalize(r) for r in rows]
    paths = {"csv": out / "results.csv", "json": out / "results.json", "md": out / "results.md"}
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        for r in final:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    doc = {"schema_version": SCHEMA_VERSION, "environment": env, "config": config, "summary": summary,
           "columns": list(COLUMNS), "rows": final}
    paths["json"].write_text(json.dumps(doc, indent=2, default=str) + "\n")
    paths["md"].write_text(markdown_report(final, env, config, summary))
    paths.update(write_plots(out, final))
    return paths


def markdown_report(rows: Sequence[dict[str, Any]], env: dict[str, Any], config: dict[str, Any],
                    summary: dict[str, Any]) -> str:
    m = env["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)
    gpu = "; ".join(m["gpus"]) or "none"
    parts = [
        f"# fakewatch benchmark: {config.get('name', '')}",
        "",
        f"- command: `{env['command']}`",
        f"- timestamp (UTC): {env['timestamp_utc']}",
        f"- machine: {m['cpu_model']}, {m['usable_cores']} usable cores ({m['logical_cores']} logical), "
        f"{m['memory_gib']} GiB RAM, GPU: {gpu}",
        f"- libraries: {libs}",
        f"- 1-minute load average: {env['load_avg_1m_start']} at start, {env['load_avg_1m_end']} at end. "
        f"{env['note']}.",
        "",
    ]
    if summary:
        parts += ["## Summary", ""]
        parts += [f"- {k}: {v}" for k, v in summary.items()]
        parts.append("")
    model = [r for r in rows if r["kind"] == "model"]
    if model:
        parts += ["## Model only", "", markdown_table(model, MODEL_VIEW), ""]
    pipe = [r for r in rows if r["kind"] != "model"]
    if pipe:
        parts += ["## End to end and naive loop", "", markdown_table(pipe, E2E_VIEW), ""]
    notes = skipped_lines(rows)
    if notes:
        parts += ["## Skipped / failed rows", ""] + [f"- {n}" for n in notes] + [""]
    parts += ["Plots: `latency_vs_variant.png`, `throughput_vs_variant.png` (batch 1 where measured, one line per "
              "backend/precision). All columns, including e2e/naive details, are in `results.csv` / "
              "`results.json`.", ""]
    return "\n".join(parts)


def write_plots(out: Path, rows: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """Latency (p50, log scale) and throughput per variant, one line per backend/precision, at one batch size."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed (servers, CI)
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["kind"] == "model" and r["status"] == "ok"]
    paths: dict[str, Path] = {}
    if not ok:
        return paths
    batch = 1 if any(r["batch"] == 1 for r in ok) else min(r["batch"] for r in ok)
    ok = [r for r in ok if r["batch"] == batch]
    variants = list(dict.fromkeys(r["variant"] for r in ok))  # order of measurement
    series: dict[str, dict[str, dict[str, Any]]] = {}
    for r in ok:
        streams = f" x{r['streams']} streams" if (r.get("streams") or 1) > 1 else ""
        series.setdefault(f"{r['backend']}/{r['precision']}{streams}", {})[r["variant"]] = r
    for key, column, ylabel, fname, log in (
            ("latency", "latency_p50_ms", f"p50 latency per batch of {batch} (ms)", "latency_vs_variant.png", True),
            ("throughput", "throughput_ips", "throughput (images/s)", "throughput_vs_variant.png", True)):
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(variants) + 3), 4.2))
        for label, by_variant in series.items():
            xs = [i for i, v in enumerate(variants) if v in by_variant]
            ys = [by_variant[variants[i]][column] for i in xs]
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels([f"{v}\n{next(r['input_size'] for r in ok if r['variant'] == v)}" for v in variants],
                           fontsize=8)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        if key == "throughput":  # the real-time lines the summary talks about
            for fps, style in ((25, ":"), (30, "--")):
                ax.axhline(fps, color="grey", linestyle=style, linewidth=1, label=f"{fps} fps")
        ax.set_title(f"fakewatch model-only {key}, batch {batch}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[key + "_png"] = path
    return paths
