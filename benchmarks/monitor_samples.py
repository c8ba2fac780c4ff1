"""Scrape a real `fakewatch watch` run's Prometheus ``/metrics`` and plot what a Grafana dashboard would show.

    python -m fakewatch.benchmarks.monitor_samples --out benchmarks/results/monitoring --duration 60

Runs ``fakewatch watch demo --metrics-port P`` as a subprocess (the bundled demo model on the demo stream: real,
then self-blended fake 4 s segments), reads ``/metrics`` every ``--every`` seconds with prometheus_client's text
parser, and writes ``samples.json`` (every sample), ``summary.json`` and ``metrics.png`` (rolling score and
verdict, processed fps, end-to-end latency p50/p90 from the histogram, newest-frame age). Nothing here is
simulated: every point is a scraped sample.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "monitoring"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, Any] | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    out: dict[str, Any] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def run(duration: float, every: float, camera: str = "demo") -> list[dict[str, Any]]:
    from tqdm import tqdm

    port = _free_port()
    cmd = [sys.executable, "-m", "fakewatch", "watch", camera, "--no-live", "--duration", str(duration),
           "--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    try:
        with tqdm(total=round(duration), unit="s", desc="scraping /metrics") as bar:
            while proc.poll() is None:
                s = scrape(port)
                if s is not None:
                    samples.append({"t": round(time.monotonic() - t0, 3), "metrics": s})
                bar.n = min(round(duration), int(time.monotonic() - t0))
                bar.refresh()
                time.sleep(every)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode != 0:
        raise RuntimeError(f"fakewatch watch exited {proc.returncode}: {err[-1000:]}")
    return samples


def series(samples: list[dict[str, Any]], camera: str = "demo") -> dict[str, list]:
    """Per-sample values a dashboard plots (rates and histogram quantiles over the previous sample)."""
    import numpy as np

    from fakewatch.runtime.metrics_output import LATENCY_BUCKETS

    def g(m: dict, key: str) -> float:
        return float(m.get(key, float("nan")))

    cam = f"camera={camera}"
    out: dict[str, list] = {k: [] for k in ("t", "score", "fake", "fps", "age", "p50_ms", "p90_ms")}
    prev = None
    for s in samples:
        m, t = s["metrics"], s["t"]
        out["t"].append(t)
        out["score"].append(g(m, f"fakewatch_camera_score{{{cam}}}"))
        out["fake"].append(g(m, f"fakewatch_camera_fake{{{cam}}}"))
        out["age"].append(g(m, f"fakewatch_camera_last_frame_age_seconds{{{cam}}}"))
        frames = g(m, f"fakewatch_camera_frames_processed_total{{{cam}}}")
        buckets = np.array([g(m, f"fakewatch_stage_latency_seconds_bucket{{le={b},stage=total}}")
                            for b in LATENCY_BUCKETS])
        if prev is not None and t > prev[0]:
            out["fps"].append((frames - prev[1]) / (t - prev[0]))
            d = buckets - prev[2]
            out["p50_ms"].append(_quantile(0.5, d, LATENCY_BUCKETS) * 1e3)
            out["p90_ms"].append(_quantile(0.9, d, LATENCY_BUCKETS) * 1e3)
        else:
            out["fps"].append(float("nan"))
            out["p50_ms"].append(float("nan"))
            out["p90_ms"].append(float("nan"))
        prev = (t, frames, buckets)
    return out


def _quantile(q: float, cumulative: Any, bounds: tuple[float, ...]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket that holds the q-th observation."""
    total = cumulative[-1] if len(cumulative) else 0
    if not total or total != total:
        return float("nan")
    rank = q * total
    lo_b, lo_c = 0.0, 0.0
    for b, c in zip(bounds, cumulative):
        if c >= rank:
            return lo_b + (b - lo_b) * ((rank - lo_c) / (c - lo_c) if c > lo_c else 0.0)
        lo_b, lo_c = b, c
    return bounds[-1]


def plot(sr: dict[str, list], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.array(sr["t"])
    fig, ax = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    fake = np.array(sr["fake"])
    ax[0].plot(t, sr["score"], label="fakewatch_camera_score (rolling P(fake))", color="tab:red")
    ax[0].fill_between(t, 0, 1, where=fake == 1, step="post", alpha=0.15, color="tab:red", label="verdict FAKE")
    ax[0].fill_between(t, 0, 1, where=fake == -1, step="post", alpha=0.15, color="tab:gray", label="UNKNOWN")
    ax[0].set_ylabel("P(fake)")
    ax[0].set_ylim(0, 1)
    ax[0].legend(loc="upper right", fontsize=7)
    ax[1].plot(t, sr["fps"], color="tab:blue", label="rate(frames_processed_total)")
    ax[1].set_ylabel("frames / s")
    ax[1].legend(loc="upper right", fontsize=7)
    ax[2].plot(t, sr["p50_ms"], label="p50", color="tab:green")
    ax[2].plot(t, sr["p90_ms"], label="p90", color="tab:olive")
    ax[2].set_ylabel("capture→alert latency (ms)")
    ax[2].legend(loc="upper right", fontsize=7)
    ax[3].plot(t, sr["age"], color="tab:purple", label="camera_last_frame_age_seconds")
    ax[3].set_ylabel("newest frame age (s)")
    ax[3].set_xlabel("seconds since fakewatch watch started")
    ax[3].legend(loc="upper right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _samples_text(samples: list[dict[str, Any]]) -> str:
    """One scraped sample per line (a JSON list; NaN as in Prometheus' text format)."""
    return "[\n" + ",\n".join(json.dumps(s, separators=(",", ":"), sort_keys=True) for s in samples) + "\n]\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=1.0, help="seconds between scrapes")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    samples = run(a.duration, a.every)
    if len(samples) < 3:
        raise RuntimeError(f"only {len(samples)} /metrics samples: the run was too short")
    (a.out / "samples.json").write_text(_samples_text(samples))
    sr = series(samples)
    import numpy as np

    fin = lambda xs: [x for x in xs if x == x]  # noqa: E731 (drop NaN)
    last = samples[-1]["metrics"]
    summary = {
        "command": "python -m fakewatch.benchmarks.monitor_samples " + " ".join(sys.argv[1:] if argv is None
                                                                                   else argv),
        "duration_s": a.duration, "samples": len(samples),
        "frames_processed": last.get("fakewatch_camera_frames_processed_total{camera=demo}"),
        "alerts_total": last.get("fakewatch_alerts_total{camera=demo,label=fake}"),
        "fps_median": float(np.median(fin(sr["fps"]))) if fin(sr["fps"]) else None,
        "latency_p50_ms_median": float(np.median(fin(sr["p50_ms"]))) if fin(sr["p50_ms"]) else None,
        "latency_p90_ms_median": float(np.median(fin(sr["p90_ms"]))) if fin(sr["p90_ms"]) else None,
        "last_frame_age_s_max": max(fin(sr["age"])) if fin(sr["age"]) else None,
        "fraction_of_samples_fake": float(np.mean(np.array(sr["fake"]) == 1)),
        "machine": "shared 2-core CPU container, onnxruntime CPU (no GPU)",
    }
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(sr, a.out / "metrics.png", f"fakewatch watch demo: /metrics scraped every {a.every:g} s "
                                     f"({len(samples)} samples, onnxruntime CPU)")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
