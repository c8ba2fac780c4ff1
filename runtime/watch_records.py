"""What the watch loop is configured with and reports: :class:`WatchConfig`, the per-frame :class:`FrameView` that
sinks see, the end-of-run :class:`RunSummary`, and the helpers that shape their records. Data only: the loop itself
is runtime/pipeline.py (which re-exports these names).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from fakewatch.core.contract import ModelSpec
from fakewatch.core.roi import Box
from fakewatch.runtime.decision import DecisionConfig
from fakewatch.runtime.latency import format_summary
from fakewatch.runtime.tracking import DEFAULT_DETECT_EVERY, Track

def check_watchable(spec: ModelSpec, artifact: object = "model") -> None:
    """Refuse contracts the watch loop cannot turn into Real/Fake alerts (one clear message)."""
    if spec.output != "fake_logit" or spec.num_outputs != 1:
        raise ValueError(
            f"{artifact}: its contract says output {spec.output!r} with {spec.num_outputs} outputs "
            f"(labels {list(spec.labels)[:4]}{'...' if len(spec.labels) > 4 else ''}); `fakewatch watch` needs a "
            f"deepfake detector with one 'fake_logit' output. Fine-tune it (`fakewatch train`) or export a detector "
            f"with --num-outputs 1")


@dataclass
class WatchConfig:
    batch: int | None = None                 # None = auto: number of sources (NVIDIA's nvstreammux advice)
    max_wait_ms: float | None = None         # None = auto: batcher.default_max_wait_ms (0 on CPU, 1/fps on GPU)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    status_interval_s: float = 1.0           # periodic status records; 0 = off
    duration_s: float | None = None
    detect_every: int = DEFAULT_DETECT_EVERY
    max_detect_every: int | None = None      # stretch detect_every up to this under load; None = 2 x detect_every
    hold_s: float = 0.5
    max_faces: int = 4
    face_detector: str | None = None         # runtime/face_detectors.py name or path; None = blazeface (else haar)
    emit_frames: bool = False                # a "frame" record per processed frame
    keep_frame_records: int = 0              # keep the last N frame records in memory (tests, benchmarks)
    poll_s: float = 0.1                      # longest single wait when no batch is pending
    # rings, not lists: a 24/7 monitor must not grow with run time (counters above them cover the whole run)
    keep_events: int = 1000
    keep_batch_log: int = 1000
    stale_after_s: float | None = None       # newest frame older than this -> stale + UNKNOWN; None = auto
    stale_after_by_stream: dict[str, float] = field(default_factory=dict)
    detect_every_by_stream: dict[str, int] = field(default_factory=dict)   # per-camera override of detect_every
    max_retries: int | None = None           # reconnect attempts of live sources before "failed"; None = forever
    # batches inferring at once (runtime/inflight.py); None = auto: 2 for runners with infer_async (Triton), else 1
    in_flight: int | None = None
    reader_max_height: int | None = None     # scale taller frames down in the reader (streams/working_size.py)
    decode_threads: int | None = None        # FFmpeg threads per decoder; None = auto (runtime/decode_threads.py)


@dataclass
class FrameView:
    """What frame-watching sinks (metrics, evidence) get for each decided frame. Read-only by convention."""
    stream: str
    seq: int
    image: Any                      # BGR uint8 HxWx3 (the reader's array; copy it to keep it)
    boxes: list[Box]
    face_probs: list[float]
    state: str
    score: float
    timings: dict[str, float]       # stage -> time.monotonic() stamp
    capture_ts: float
    track_ids: list[int] = field(default_factory=list)   # tracker id of each box (face models; dashboard labels)
    server_ms: dict[str, float] = field(default_factory=dict)   # remote backend: server_queue/compute ms


@dataclass
class RunSummary:
    duration_s: float
    streams: dict[str, dict]
    overall: dict
    batch_sizes: dict[int, int]              # rows per batch -> how many batches ran with that many (whole run)
    batch_reasons: dict[str, int]
    batch_log: list[tuple[int, int, str]]    # the last WatchConfig.keep_batch_log batches: (rows, streams, reason)
    stop_reason: str
    events: list[dict]                       # the last WatchConfig.keep_events state/source/summary records
    frame_records: list[dict]
    model: str = ""
    backend: str = ""
    events_total: int = 0                    # all state/source/summary records, including those the ring dropped
    roi: dict = field(default_factory=dict)   # ROI stage: detector name and cost (runtime/roi_stage.py)

    def batches(self) -> dict[str, Any]:
        return batch_stats(self.batch_sizes)

    def failed_sources(self) -> dict[str, str]:
        """Sources whose reader ended in 'failed' -> the last failure message."""
        last = {e["stream"]: e.get("message", "") for e in self.events
                if e.get("type") == "source" and e.get("state") == "failed"}
        return {sid: last.get(sid, "failed") for sid, st in self.streams.items() if st.get("source_state") == "failed"}

    @property
    def all_sources_failed(self) -> bool:
        return bool(self.streams) and len(self.failed_sources()) == len(self.streams)

    def text(self) -> str:
        ran = f"\n  model: {self.model} on {self.backend}" if self.model else ""
        return format_summary(self.streams, self.overall, self.batches(), self.duration_s) + ran + \
            f"\n  ended: {self.stop_reason}"


def batch_stats(sizes: dict[int, int]) -> dict[str, Any]:
    """count / mean rows / histogram from a rows -> batches counter (the summary's "batches" block)."""
    count = sum(sizes.values())
    rows = sum(k * v for k, v in sizes.items())
    return {"count": count, "mean_size": rows / count if count else 0.0,
            "histogram": {str(k): v for k, v in sorted(sizes.items())}}


def track_records(tracks: Sequence[Track], face_probs: Sequence[float], scale: int = 1) -> list[dict]:
    """The optional ``tracks`` field of frame/state records: id, face box (x, y, w, h, in the source's pixels even
    when the reader scaled the frame down by ``scale``) and P(fake) per face."""
    return [{"id": t.id, "box": [int(round(v * scale)) for v in t.box],
             "p_fake": round(float(p), 4) if p is not None else None}
            for t, p in zip(tracks, list(face_probs) + [None] * (len(tracks) - len(face_probs)))]
