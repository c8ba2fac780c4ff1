"""The watch loop: sources -> ROI -> preprocess -> batcher -> runner -> per-stream decisions -> sinks.

One consumer thread (the caller's) does everything after capture; the streams' reader threads only decode and keep
the newest frame. While the batcher waits for more frames, the loop is blocked in ``SourceGroup.wait_frames`` with
the batch's remaining wait as timeout, so a batch leaves exactly when it is full or its ``max_wait`` has expired.

A source that fails is reported as a ``source`` event and the others keep running. The run ends when the stop event
is set (Ctrl-C / SIGTERM in the CLI), ``duration_s`` has passed, or every source has ended (file EOF).
"""
from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.core.metrics import sigmoid
from fakewatch.core.preprocess import preprocess
from fakewatch.core.roi import Box, RoiExtractor, RoiTracker, make_face_detector
from fakewatch.runtime.alerts import Sink, make_record
from fakewatch.runtime.backends.base import Runner
from fakewatch.runtime.batcher import AUTO_BATCH_CAP, Batch, Batcher, default_max_wait_ms
from fakewatch.runtime.decision import Decision, DecisionConfig, StreamDecider
from fakewatch.runtime.latency import LatencyTracker, format_summary


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
    detect_every: int = 1
    hold_s: float = 0.5
    max_faces: int = 4
    face_detector: str | None = None         # YuNet .onnx path; None = Haar
    emit_frames: bool = False                # a "frame" record per processed frame
    keep_frame_records: int = 0              # keep the last N frame records in memory (tests, benchmarks)
    poll_s: float = 0.1                      # longest single wait when no batch is pending


@dataclass
class _Item:
    frame: Any
    boxes: list[Box]
    stream_ts: float


@dataclass
class RunSummary:
    duration_s: float
    streams: dict[str, dict]
    overall: dict
    batch_sizes: list[int]
    batch_reasons: dict[str, int]
    batch_log: list[tuple[int, int, str]]
    stop_reason: str
    events: list[dict]
    frame_records: list[dict]
    model: str = ""
    backend: str = ""

    def batches(self) -> dict[str, Any]:
        sizes = self.batch_sizes
        return {"count": len(sizes), "mean_size": float(np.mean(sizes)) if sizes else 0.0,
                "histogram": {str(k): v for k, v in sorted(Counter(sizes).items())}}

    def text(self) -> str:
        ran = f"\n  model: {self.model} on {self.backend}" if self.model else ""
        return format_summary(self.streams, self.overall, self.batches(), self.duration_s) + ran + \
            f"\n  ended: {self.stop_reason}"


class Pipeline:
    """Run ``runner`` over ``sources`` until stopped. ``sinks`` receive every record (see runtime/alerts.py)."""

    def __init__(self, sources: Sequence[Any], runner: Runner, cfg: WatchConfig | None = None,
                 sinks: Sequence[Sink] = (), stop_event: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic, model_name: str | None = None) -> None:
        from fakewatch.streams import SourceGroup  # lazy: keeps `import runtime` free of reader threads machinery

        if not sources:
            raise ValueError("watch needs at least one source")
        self.cfg = cfg or WatchConfig()
        self.runner = runner
        self.spec = runner.spec
        # GPU runners (TensorRT) take frames + boxes and preprocess on the device (runtime/cuda_preprocess.py)
        # (the kernel implements the "linear" resize only; other contracts preprocess on the CPU, the reference)
        self.device_input = bool(getattr(runner, "accepts_device_input", False)) and runner.spec.resize == "linear"
        check_watchable(self.spec, runner.artifact.name)
        self.sinks = list(sinks)
        self.stop_event = stop_event or threading.Event()
        self.clock = clock
        self.model_name = model_name or runner.artifact.name
        self._source_events: queue.Queue = queue.Queue()
        self.group = SourceGroup(sources, on_event=self._source_events.put)
        self.live = {s.id: bool(s.live) for s in self.group.sources}
        detector = make_face_detector(self.cfg.face_detector) if self.spec.roi == "face" else None
        self.roi = RoiTracker(RoiExtractor(self.spec, detector, max_faces=self.cfg.max_faces),
                              detect_every=self.cfg.detect_every, hold_s=self.cfg.hold_s)
        self.deciders: dict[str, StreamDecider] = {}
        self.latency = LatencyTracker()
        self.source_state: dict[str, str] = {s.id: "connecting" for s in self.group.sources}
        self.batch_sizes: list[int] = []
        self.batch_reasons: Counter = Counter()
        self.batch_log: list[tuple[int, int, str]] = []     # (rows, distinct streams, reason) per batch run
        self.events: list[dict] = []
        self.frame_records: deque = deque(maxlen=max(0, self.cfg.keep_frame_records) or None)
        self._t0 = 0.0
        self.batcher: Batcher | None = None
        self.max_wait_ms: float | None = None

    # ------------------------------------------------------------------ records
    def _t(self) -> float:
        return self.clock() - self._t0

    def _emit(self, rec: dict) -> None:
        if rec["type"] in ("state", "source", "summary"):
            self.events.append(rec)
        for sink in self.sinks:
            sink.emit(rec)

    def _drain_source_events(self) -> None:
        while True:
            try:
                ev = self._source_events.get_nowait()
            except queue.Empty:
                return
            self.source_state[ev.source_id] = ev.state
            self._update_target()
            self._emit(make_record("source", self._t(), stream=ev.source_id, state=ev.state, message=ev.message))

    def _update_target(self) -> None:
        # a batch is complete with one frame per source still delivering; dead sources must not cost a timeout
        if self.batcher is not None:
            alive = sum(1 for st in self.source_state.values() if st not in ("failed", "eof", "stopped"))
            self.batcher.target_items = max(1, alive)

    def _status(self) -> None:
        stats = self.group.stats()
        for sid in self.source_state:
            self._emit(make_record("status", self._t(), stream=sid, **self._stream_status(sid, stats)))

    def _stream_status(self, sid: str, stats: dict | None = None) -> dict:
        st = self.latency.stream_stats(sid)
        d = self.deciders.get(sid)
        reader = (stats or {}).get(sid)
        if reader is not None:   # frames the reader replaced before we took them are drops too
            st["dropped"] = max(st["dropped"], int(reader.dropped))
        return {"state": d.state if d else "UNKNOWN", "score": d.rolling_score() if d else None,
                "source_state": self.source_state.get(sid, "unknown"), **st}

    # ------------------------------------------------------------------ stages
    def _ingest(self, frame: Any) -> list[Batch]:
        frame.stamp("dequeue", self.clock())
        sid = frame.source_id
        stream_ts = frame.source_ts if (frame.source_ts is not None and not self.live.get(sid, True)) \
            else frame.capture_ts   # files: media time (reproducible); live: arrival time
        boxes, _detected = self.roi.boxes(sid, frame.image, stream_ts)
        boxes = boxes[: self.batcher.max_batch]
        frame.stamp("roi", self.clock())

        def fill(view: np.ndarray) -> None:
            if self.device_input:   # GPU runners preprocess the whole batch on the device in _run_batch
                return
            preprocess([frame.image] * len(boxes), boxes, self.spec, out=view)
            frame.stamp("preprocess", self.clock())

        if not boxes:
            frame.stamp("preprocess", self.clock())
        return self.batcher.add(_Item(frame, boxes, stream_ts), len(boxes), fill if boxes else None)

    def _run_batch(self, batch: Batch) -> None:
        for item in batch.items:
            item.frame.stamp("batch", batch.closed_ts)
        probs = np.empty(0)
        if batch.rows:
            logits = self._infer_device(batch) if self.device_input else self.runner.infer(batch.inputs)
            t_inf = self.clock()
            probs = sigmoid(logits[:, 0])
            self.batch_sizes.append(batch.rows)
            self.batch_reasons[batch.reason] += 1
            self.batch_log.append((batch.rows, len({it.frame.source_id for it in batch.items if it.boxes}),
                                   batch.reason))
            for item in batch.items:
                if item.boxes:
                    item.frame.stamp("inference", t_inf)
        for i, item in enumerate(batch.items):
            self._decide(item, [float(p) for p in batch.outputs_of(probs, i)] if item.boxes else [])

    def _infer_device(self, batch: Batch) -> np.ndarray:
        """Fused CUDA preprocessing straight into the engine's input buffer, then inference (no host tensor)."""
        from fakewatch.runtime.cuda_preprocess import preprocess_into

        images = [it.frame.image for it in batch.items for _ in it.boxes]
        boxes = [b for it in batch.items for b in it.boxes]
        n = preprocess_into(self.runner, images, boxes)
        t_pre = self.clock()
        for item in batch.items:
            if item.boxes:
                item.frame.stamp("preprocess", t_pre)
        return self.runner.infer_prepared(n)

    def _decide(self, item: _Item, face_probs: list[float]) -> None:
        f = item.frame
        d = self.deciders.get(f.source_id)
        if d is None:
            d = self.deciders[f.source_id] = StreamDecider(f.source_id, self.cfg.decision)
        dec: Decision = d.update(f.seq, item.stream_ts, face_probs, f.truth)
        f.stamp("decision", self.clock())
        if dec.changed:
            self._emit(make_record("state", self._t(), stream=f.source_id, state=dec.state, previous=dec.previous,
                                   score=dec.score, frame_score=dec.frame_score, seq=f.seq,
                                   stream_time=item.stream_ts, faces=dec.faces,
                                   latency_ms=_ms_until(f.timings, "decision"), truth=f.truth))
        frame_rec = None
        if self.cfg.emit_frames or self.frame_records.maxlen:
            frame_rec = make_record("frame", self._t(), stream=f.source_id, seq=f.seq, stream_time=item.stream_ts,
                                    state=dec.state, score=dec.score, frame_score=dec.frame_score, faces=dec.faces,
                                    latency_ms=_ms_until(f.timings, "decision"), truth=f.truth)
            if self.cfg.emit_frames:
                for sink in self.sinks:
                    sink.emit(frame_rec)
        f.stamp("alert", self.clock())
        lat = self.latency.record(f.source_id, f.seq, f.timings, faces=len(face_probs))
        if frame_rec is not None and self.frame_records.maxlen:
            frame_rec["latency_ms"] = {k: round(v, 3) for k, v in lat.items()}
            self.frame_records.append(frame_rec)

    # ------------------------------------------------------------------ main loop
    def run(self) -> RunSummary:
        cfg = self.cfg
        n_sources = len(self.group.sources)
        self.runner.activate()
        try:
            rows_per_frame = cfg.max_faces if self.spec.roi == "face" else 1
            max_batch = cfg.batch or min(AUTO_BATCH_CAP, max(n_sources, rows_per_frame))
            if self.runner.max_batch is not None:
                max_batch = min(max_batch, self.runner.max_batch)
            wait_ms = cfg.max_wait_ms if cfg.max_wait_ms is not None else default_max_wait_ms(
                runs_on_gpu(self.runner), [s.fps for s in self.group.sources])
            self.max_wait_ms = wait_ms
            self.batcher = Batcher(max_batch, wait_ms / 1e3, (3, *self.spec.input_size), clock=self.clock)
            self._update_target()
            self._t0 = self.clock()
            self.group.start()
            stop_reason = self._loop()
        finally:
            self.group.stop()
            self._drain_source_events()
            if self.batcher is not None:
                last = self.batcher.flush()
                if last is not None and self.runner.is_active:
                    self._run_batch(last)
            self.runner.deactivate()
        return self._finish(stop_reason)

    def _loop(self) -> str:
        cfg = self.cfg
        next_status = self._t0 + cfg.status_interval_s if cfg.status_interval_s > 0 else float("inf")
        end = self._t0 + cfg.duration_s if cfg.duration_s else float("inf")
        while True:
            if self.stop_event.is_set():
                return "stopped (signal)"
            now = self.clock()
            if now >= end:
                return f"duration {cfg.duration_s:g} s reached"
            left = self.batcher.time_left(now)
            timeout = min(cfg.poll_s if left is None else left, max(0.0, next_status - now), max(0.0, end - now))
            frames = self.group.wait_frames(timeout)
            for frame in frames:
                for batch in self._ingest(frame):
                    self._run_batch(batch)
            expired = self.batcher.poll()
            if expired is not None:
                self._run_batch(expired)
            self._drain_source_events()
            if self.clock() >= next_status:
                self._status()
                next_status += cfg.status_interval_s * max(1, int((self.clock() - next_status)
                                                                   // cfg.status_interval_s) + 1)
            if not frames and self.group.all_finished:
                return "all sources ended"

    def _finish(self, stop_reason: str) -> RunSummary:
        duration = self._t()
        stats = self.group.stats()
        streams = {sid: self._stream_status(sid, stats) for sid in self.source_state}
        overall = self.latency.overall()
        overall["dropped"] = sum(st["dropped"] for st in streams.values())   # reader drops included
        summary = RunSummary(duration, streams, overall, list(self.batch_sizes),
                             dict(self.batch_reasons), list(self.batch_log), stop_reason, self.events,
                             list(self.frame_records), model=self.model_name, backend=self.runner.name)
        self._emit(make_record("summary", duration, duration_s=duration, model=self.model_name,
                               backend=self.runner.name, batches={**summary.batches(), "max_batch":
                               self.batcher.max_batch
                                                                    if self.batcher else None,
                                                                    "max_wait_ms": self.max_wait_ms}, streams=streams,
                               latency_ms=summary.overall["latency_ms"], stop_reason=stop_reason))
        for sink in self.sinks:
            sink.close()
        return summary


def runs_on_gpu(runner: Runner) -> bool:
    """True when the (active) runner executes on a GPU: CUDA provider, cuda device, or TensorRT."""
    if "CUDAExecutionProvider" in (getattr(runner, "providers", None) or [])[:1]:
        return True
    return runner.name == "tensorrt" or str(getattr(runner, "device", "cpu")).startswith("cuda")


def _ms_until(timings: dict[str, float], stage: str) -> dict[str, float]:
    from fakewatch.runtime.latency import stage_durations_ms

    upto = {k: v for k, v in timings.items() if k != "alert" or stage == "alert"}
    return {k: round(v, 3) for k, v in stage_durations_ms(upto).items()}
