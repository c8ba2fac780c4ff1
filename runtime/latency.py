"""Measured per-frame latency: every stage stamps ``frame.timings`` with ``time.monotonic()``; this module turns the
stamps into stage durations and p50/p90/p99 per stream and per stage, plus dropped frames and effective fps.

Stamps, in pipeline order (a stage's duration is its stamp minus the previous stamp present on the frame):

    capture     reader thread got the decoded frame (start)
    dequeue     the pipeline took it from the source group (time waiting for the consumer)
    roi         face detection / box hold done
    preprocess  crop + resize + normalise written into the batch
    batch       the batch closed (time waiting for the batch to fill, bounded by --max-wait-ms)
    inference   the backend returned (absent for frames without a face: nothing to infer)
    decision    the stream's rolling decision updated
    alert       events/records for the frame written to the sinks

``total`` = alert - capture.

A remote backend (Triton) also reports where a frame's ``inference`` time went on the server: ``server_queue``
(waiting in the server's batcher) and ``server_compute`` (running the model). They are durations *inside*
``inference``, not stamps, so they are recorded next to the stages and never added to ``total``.

Memory is constant per stream: each stage keeps a fixed log-bucket histogram (fakewatch.core.histogram), not the
samples, so a monitor can run for months. Percentiles come from the buckets (within a fraction of one bucket,
about 6 %), which costs O(buckets) per status record instead of a sort over every frame seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from fakewatch.core.histogram import LogHistogram

STAGES: tuple[str, ...] = ("dequeue", "roi", "preprocess", "batch", "inference", "decision", "alert")
#: durations inside ``inference`` that a remote backend reports (runtime/backends/triton_stats.py)
SERVER_STAGES: tuple[str, ...] = ("server_queue", "server_compute")
#: every stage a summary may show, in display order
ALL_STAGES: tuple[str, ...] = (*STAGES, "total", *SERVER_STAGES)
PERCENTILES: tuple[int, ...] = (50, 90, 99)


def stage_durations_ms(timings: Mapping[str, float]) -> dict[str, float]:
    """Stage -> milliseconds for one frame's stamps, plus ``total`` (capture to the last stamp present)."""
    out: dict[str, float] = {}
    prev = timings.get("capture")
    if prev is None:
        return out
    start = prev
    # in time order, not STAGES order: on a GPU runner preprocessing happens after batching (fused, on device)
    present = sorted((ts, i, stage) for i, stage in enumerate(STAGES) if (ts := timings.get(stage)) is not None)
    for ts, _i, stage in present:
        out[stage] = (ts - prev) * 1e3
        prev = ts
    out["total"] = (prev - start) * 1e3
    return out


def percentiles(values: Iterable[float], ps: tuple[int, ...] = PERCENTILES) -> dict[str, float]:
    arr = np.fromiter(values, np.float64)
    if arr.size == 0:
        return {f"p{p}": float("nan") for p in ps}
    q = np.percentile(arr, ps)
    return {f"p{p}": round(float(v), 3) for p, v in zip(ps, q)}


@dataclass
class _StreamLatency:
    hist: dict[str, LogHistogram] = field(default_factory=dict)
    frames: int = 0
    dropped: int = 0
    no_face: int = 0
    last_seq: int | None = None
    first_ts: float | None = None
    last_ts: float | None = None


class LatencyTracker:
    """Collects stage durations per stream into fixed-size histograms and counts drops/fps."""

    def __init__(self) -> None:
        self._streams: dict[str, _StreamLatency] = {}

    def _get(self, stream: str) -> _StreamLatency:
        s = self._streams.get(stream)
        if s is None:
            s = self._streams[stream] = _StreamLatency()
        return s

    def record(self, stream: str, seq: int, timings: Mapping[str, float], *, faces: int | None = None,
               server_ms: Mapping[str, float] | None = None) -> dict[str, float]:
        """Account one finished frame; returns its stage durations in ms (``server_ms``: SERVER_STAGES -> ms)."""
        s = self._get(stream)
        if s.last_seq is not None and seq > s.last_seq + 1:
            s.dropped += seq - s.last_seq - 1   # frames the reader decoded but the pipeline never saw (newest wins)
        s.last_seq = seq if s.last_seq is None else max(s.last_seq, seq)
        s.frames += 1
        if faces == 0:
            s.no_face += 1
        end = timings.get("alert", timings.get("decision"))
        if end is not None:
            s.first_ts = end if s.first_ts is None else s.first_ts
            s.last_ts = end
        d = stage_durations_ms(timings)
        if server_ms and "inference" in d:     # only frames that went to the server
            d.update({k: float(v) for k, v in server_ms.items() if k in SERVER_STAGES})
        for stage, ms in d.items():
            h = s.hist.get(stage)
            if h is None:
                h = s.hist[stage] = LogHistogram()
            h.observe(ms)
        return d

    def streams(self) -> list[str]:
        return list(self._streams)

    def stream_stats(self, stream: str) -> dict:
        """frames, dropped, no_face, fps and per-stage {p50, p90, p99} (ms) for one stream."""
        s = self._get(stream)
        span = (s.last_ts - s.first_ts) if (s.first_ts is not None and s.last_ts is not None) else 0.0
        fps = (s.frames - 1) / span if span > 0 and s.frames > 1 else 0.0
        return {
            "frames": s.frames, "dropped": s.dropped, "no_face": s.no_face, "fps": round(fps, 2),
            "latency_ms": {stage: s.hist[stage].percentiles(PERCENTILES) for stage in ALL_STAGES
                           if stage in s.hist},
        }

    def overall(self) -> dict:
        """All streams pooled: per-stage percentiles and totals."""
        return {
            "frames": sum(s.frames for s in self._streams.values()),
            "dropped": sum(s.dropped for s in self._streams.values()),
            "latency_ms": {stage: h.percentiles(PERCENTILES) for stage, h in self.pooled().items()},
        }

    def pooled(self) -> dict[str, LogHistogram]:
        """Per-stage histograms merged over all streams (bucket bounds + counts, e.g. for a metrics exporter)."""
        out: dict[str, LogHistogram] = {}
        for stage in ALL_STAGES:
            for s in self._streams.values():
                if stage in s.hist:
                    out[stage] = out[stage].merge(s.hist[stage]) if stage in out else s.hist[stage].copy()
        return out

    def histogram(self, stream: str, stage: str) -> LogHistogram | None:
        s = self._streams.get(stream)
        return s.hist.get(stage) if s else None


def format_summary(per_stream: Mapping[str, dict], overall: dict, batches: Mapping[str, object] | None = None,
                   duration_s: float | None = None) -> str:
    """The human summary printed on exit: one block per stream, stage percentiles in ms."""
    lines = ["fakewatch watch summary" + (f" ({duration_s:.1f} s)" if duration_s is not None else "")]
    cols = [st for st in ALL_STAGES if st in overall.get("latency_ms", {})]
    header = f"  {'stream':<24} {'frames':>6} {'drop':>5} {'noface':>6} {'fps':>6}  {'state':<7} "
    short = {"server_queue": "srv_queue", "server_compute": "srv_comp"}
    lines.append(header + " ".join(f"{short.get(c, c)[:10]:>10}" for c in cols) + "   (ms p50/p99)")
    for sid, st in per_stream.items():
        lat = st.get("latency_ms", {})
        cells = []
        for c in cols:
            p = lat.get(c)
            cells.append(f"{p['p50']:>4.1f}/{p['p99']:<5.1f}" if p else f"{'-':>10}")
        lines.append(f"  {sid[:24]:<24} {st['frames']:>6} {st['dropped']:>5} {st['no_face']:>6} {st['fps']:>6.1f}  "
                     f"{st.get('state', ''):<7} " + " ".join(f"{c:>10}" for c in cells))
    tot = overall.get("latency_ms", {}).get("total")
    if tot:
        lines.append(f"  end-to-end latency (all streams): p50 {tot['p50']:.1f} ms, p90 {tot['p90']:.1f} ms, "
                     f"p99 {tot['p99']:.1f} ms over {overall['frames']} frames, {overall['dropped']} dropped")
    srv = [overall["latency_ms"].get(k) for k in SERVER_STAGES]
    if all(srv):
        lines.append(f"  on the server (Triton statistics, per request): queue p50 {srv[0]['p50']:.1f} ms, "
                     f"compute p50 {srv[1]['p50']:.1f} ms; inference minus both is transfer and client wait")
    if batches:
        lines.append(f"  batches: {batches.get('count', 0)} run, mean size {batches.get('mean_size', 0):.2f}, "
                     f"sizes {batches.get('histogram', {})}")
    return "\n".join(lines)
