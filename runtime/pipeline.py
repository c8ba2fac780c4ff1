"""The watch loop: sources -> ROI -> preprocess -> batcher -> runner -> per-stream decisions -> sinks.

Three kinds of threads: the streams' readers decode and keep the newest frame; the ROI stage (runtime/roi_stage.py)
detects faces (every K frames, batched across streams, tracks in between), crops and preprocesses; the caller's
thread batches, infers, decides and writes records. While the batcher waits for more frames, the loop is blocked on
the ROI stage's queue with the batch's remaining wait as timeout, so a batch leaves exactly when it is full or its
``max_wait`` has expired. A runner with asynchronous inference (Triton) keeps up to ``WatchConfig.in_flight`` batches
on its server (runtime/inflight.py) while this thread closes the next; answers are decided in send order.

A source that fails is reported as a ``source`` event and the others keep running. The run ends when the stop event
is set (Ctrl-C / SIGTERM in the CLI), ``duration_s`` has passed, or every source has ended (file EOF).
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fakewatch.core.metrics import sigmoid
from fakewatch.core.roi import Box
from fakewatch.runtime.alerts import Sink, make_record
from fakewatch.runtime.backends.base import BackendUnavailable, Runner
from fakewatch.runtime.batcher import AUTO_BATCH_CAP, Batch, Batcher, default_max_wait_ms
from fakewatch.runtime.decision import Decision, StreamDecider
from fakewatch.runtime.detect_cadence import CadenceConfig, DetectCadence
from fakewatch.runtime.face_detectors import close_detector, make_detector
from fakewatch.runtime.inflight import ASYNC_IN_FLIGHT, InFlight, Sent
from fakewatch.runtime.roi_stage import Prepared, RoiStage
from fakewatch.runtime.latency import LatencyTracker
from fakewatch.runtime.stale import StaleWatch
from fakewatch.runtime.tracking import DEFAULT_DETECT_EVERY, FaceTracks, Track, TrackConfig  # noqa: F401
# the loop's records live in watch_records.py; imported here by name for the loop and for its callers
from fakewatch.runtime.watch_records import (FrameView, RunSummary, WatchConfig, batch_stats,  # noqa: F401
                                             check_watchable, track_records)


@dataclass
class _Item:
    frame: Any
    boxes: list[Box]
    stream_ts: float
    tracks: list[Track] = field(default_factory=list)
    server_ms: dict[str, float] = field(default_factory=dict)   # latency.SERVER_STAGES from a remote backend


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
        backoff = None
        if self.cfg.max_retries is not None:
            from fakewatch.streams.backoff import Backoff
            backoff = Backoff(max_retries=self.cfg.max_retries)
        from fakewatch.runtime.decode_threads import auto_decode_threads
        from fakewatch.streams.working_size import WorkingSize

        self.group = SourceGroup(
            sources, on_event=self._source_events.put, backoff=backoff,
            working_size=WorkingSize(self.cfg.reader_max_height) if self.cfg.reader_max_height else None,
            decode_threads=auto_decode_threads(len(sources)) if self.cfg.decode_threads is None
            else self.cfg.decode_threads)
        self.live = {s.id: bool(s.live) for s in self.group.sources}
        detector = make_detector(self.cfg.face_detector, backend=runner.name) if self.spec.roi == "face" else None
        self.detector = detector
        self.tracks = FaceTracks(TrackConfig(detect_every=self.cfg.detect_every, hold_s=self.cfg.hold_s,
                                             every_by_stream=dict(self.cfg.detect_every_by_stream),
                                             max_faces=self.cfg.max_faces, roi_margin=self.spec.roi_margin)) \
            if detector is not None else None
        self.cadence = self._cadence()           # validates detect_every <= max_detect_every before anything runs
        self.stage: RoiStage | None = None
        self.stale = StaleWatch(self.cfg.stale_after_s, dict(self.cfg.stale_after_by_stream))
        self._next_stale_check = 0.0
        self._frame_sinks = [s for s in self.sinks if getattr(s, "wants_frames", False)]
        self.deciders: dict[str, StreamDecider] = {}
        self.latency = LatencyTracker()
        self.source_state: dict[str, str] = {s.id: "connecting" for s in self.group.sources}
        self.batch_sizes: Counter = Counter()               # rows -> batches run with that many rows
        self.batch_reasons: Counter = Counter()
        self.batch_log: deque = deque(maxlen=max(1, self.cfg.keep_batch_log))   # (rows, streams, reason)
        self.events: deque = deque(maxlen=max(1, self.cfg.keep_events))
        self.events_total = 0
        self.frame_records: deque = deque(maxlen=max(0, self.cfg.keep_frame_records) or None)
        self._t0 = 0.0
        self.batcher: Batcher | None = None
        self.max_wait_ms: float | None = None
        self.backend_failures = 0                # batches lost to BackendUnavailable (remote server down)
        self._backend_ok = True
        self.window: InFlight | None = None      # batches on a remote server while the loop goes on

    # ------------------------------------------------------------------ records
    def _t(self) -> float:
        return self.clock() - self._t0

    def _emit(self, rec: dict) -> None:
        if rec["type"] in ("state", "source", "summary"):
            self.events.append(rec)
            self.events_total += 1
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
            if ev.state in ("reconnecting", "failed"):
                self.stale.clear(ev.source_id)
                self._forget(ev.source_id, ev.state)

    def _forget(self, sid: str, why: str) -> None:
        """The stream stopped delivering: its verdict is no longer current, so it goes UNKNOWN everywhere."""
        d = self.deciders.get(sid)
        if d is None or d.state == "UNKNOWN":
            return
        seq = d.last.seq if d.last is not None else -1
        previous = d.forget()
        self._emit(make_record("state", self._t(), stream=sid, state="UNKNOWN", previous=previous, score=None,
                               frame_score=None, seq=seq, faces=0, latency_ms={}, reason=why))

    def _check_stale(self) -> None:
        now = self.clock()
        if now < self._next_stale_check:
            return
        self._next_stale_check = now + 0.25       # stats() walks every reader: a few times a second is enough
        stats = self.group.stats()
        ages = {sid: (st.last_frame_age_s, st.nominal_fps) for sid, st in stats.items()
                if self.source_state.get(sid) == "live" and self.live.get(sid)}   # files end, they do not stall
        for sid, age, limit in self.stale.check(ages):
            self.source_state[sid] = "stale"
            self._emit(make_record("source", self._t(), stream=sid, state="stale",
                                   message=f"no frame for {age:.1f} s (stale after {limit:.1f} s)"))
            self._forget(sid, "stale")

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
    def _ingest(self, p: Prepared) -> list[Batch]:
        """Hand one prepared frame (ROI stage output) to the batcher."""
        sid = p.frame.source_id
        if self.stale.fresh(sid):
            self.source_state[sid] = "live"
            self._emit(make_record("source", self._t(), stream=sid, state="live", message="frames again"))
        boxes = p.boxes[: self.batcher.max_batch]

        def fill(view: np.ndarray) -> None:
            if p.rows is not None:   # GPU runners preprocess the whole batch on the device in _run_batch
                view[...] = p.rows[: len(boxes)]

        item = _Item(p.frame, boxes, p.stream_ts, p.tracks[: len(boxes)])
        return self.batcher.add(item, len(boxes), fill if boxes else None)

    def _run_batch(self, batch: Batch) -> None:
        for item in batch.items:
            item.frame.stamp("batch", batch.closed_ts)
        if self.window is not None and (batch.rows or len(self.window)):
            while self.window.full:                        # bounded: wait for the oldest before sending more
                self._complete(self.window.oldest())
            self.window.push(batch, self.runner.infer_async(batch.inputs) if batch.rows else None)
            self._collect()
            return
        if not batch.rows:
            self._decide_batch(batch, None, self.clock())
            return
        try:
            logits = self._infer_device(batch) if self.device_input else self.runner.infer(batch.inputs)
        except BackendUnavailable as exc:
            self._lost(exc)
            return
        self._decide_batch(batch, logits, self.clock())

    def _collect(self, wait_all: bool = False) -> None:
        """Decide the in-flight batches that have their answer (all of them, waiting, with ``wait_all``)."""
        if self.window is None:
            return
        for sent in self.window.ready():
            self._complete(sent)
        while wait_all and len(self.window):
            self._complete(self.window.oldest())

    def _complete(self, sent: Sent) -> None:
        if sent.future is None:
            self._decide_batch(sent.batch, None, sent.done_ts)
            return
        try:
            logits = self.runner.wait(sent.future)
        except BackendUnavailable as exc:
            self._lost(exc)
            return
        self._decide_batch(sent.batch, logits, sent.done_ts if sent.done_ts is not None else self.clock())

    def _lost(self, exc: BackendUnavailable) -> None:
        # a remote server is down: these frames are never recorded, so they count as dropped (seq gaps)
        self.backend_failures += 1
        if self.backend_failures == 1 or self._backend_ok:
            print(f"fakewatch watch: {exc}", file=sys.stderr)
        self._backend_ok = False

    def _decide_batch(self, batch: Batch, logits: np.ndarray | None, t_inf: float) -> None:
        probs = np.empty(0)
        if logits is not None:
            self._backend_ok = True
            probs = sigmoid(logits[:, 0])
            self.batch_sizes[batch.rows] += 1
            self.batch_reasons[batch.reason] += 1
            self.batch_log.append((batch.rows, len({it.frame.source_id for it in batch.items if it.boxes}),
                                   batch.reason))
            server_ms = self._server_ms()
            for item in batch.items:
                if item.boxes:
                    item.frame.stamp("inference", t_inf)
                    item.server_ms = server_ms
            for sink in self._frame_sinks:
                sink.batch(batch.rows, batch.reason)
        for i, item in enumerate(batch.items):
            self._decide(item, [float(p) for p in batch.outputs_of(probs, i)] if item.boxes else [])

    def _server_ms(self) -> dict[str, float]:
        fn = getattr(self.runner, "server_stage_ms", None)     # Triton: its statistics, sampled in the background
        return fn() if fn is not None else {}

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
        tracks = {"tracks": track_records(item.tracks, face_probs, f.scale)} if item.tracks else {}
        if dec.changed:
            self._emit(make_record("state", self._t(), stream=f.source_id, state=dec.state, previous=dec.previous,
                                   score=dec.score, frame_score=dec.frame_score, seq=f.seq,
                                   stream_time=item.stream_ts, faces=dec.faces,
                                   latency_ms=_ms_until(f.timings, "decision"), truth=f.truth, **tracks))
        frame_rec = None
        if self.cfg.emit_frames or self.frame_records.maxlen:
            frame_rec = make_record("frame", self._t(), stream=f.source_id, seq=f.seq, stream_time=item.stream_ts,
                                    state=dec.state, score=dec.score, frame_score=dec.frame_score, faces=dec.faces,
                                    latency_ms=_ms_until(f.timings, "decision"), truth=f.truth, **tracks)
            if self.cfg.emit_frames:
                for sink in self.sinks:
                    sink.emit(frame_rec)
        f.stamp("alert", self.clock())
        lat = self.latency.record(f.source_id, f.seq, f.timings, faces=len(face_probs), server_ms=item.server_ms)
        if self._frame_sinks:
            view = FrameView(f.source_id, f.seq, f.image, item.boxes, face_probs, dec.state, dec.score, f.timings,
                             f.capture_ts, [t.id for t in item.tracks], item.server_ms)
            for sink in self._frame_sinks:
                sink.frame(view)
        if frame_rec is not None and self.frame_records.maxlen:
            frame_rec["latency_ms"] = {k: round(v, 3) for k, v in lat.items()}
            self.frame_records.append(frame_rec)

    # ------------------------------------------------------------------ main loop
    def run(self) -> RunSummary:
        cfg = self.cfg
        n_sources = len(self.group.sources)
        self.runner.activate()
        # re-read after activate: a GPU runner whose preprocessing kernel failed to compile takes host batches
        self.device_input = bool(getattr(self.runner, "accepts_device_input", False))
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
            self.stage = RoiStage(self.group, self.spec, self.tracks, self.detector, live=self.live,
                                  on_host=not self.device_input, max_rows=max_batch,
                                  queue_size=max(2, 2 * n_sources), clock=self.clock, cadence=self.cadence)
            depth = self._in_flight_depth()
            if depth > 1:
                self.window = InFlight(depth, self.clock, on_done=self.stage.wake)
            if self.detector is not None and hasattr(self.detector, "activate"):
                self.detector.activate()      # load the detector model before the clock starts
            self._t0 = self.clock()
            self.group.start()
            self.stage.start()
            stop_reason = self._loop()
        finally:
            if self.stage is not None:
                self.stage.stop()
            self.group.stop()
            self._drain_source_events()
            if self.batcher is not None and self.runner.is_active:
                last = self.batcher.flush()
                if last is not None:
                    self._run_batch(last)
                self._collect(wait_all=True)             # nothing sent is left undecided
            self.runner.deactivate()
            if self.detector is not None:
                close_detector(self.detector)
        return self._finish(stop_reason)

    def _cadence(self) -> DetectCadence | None:
        k = self.cfg.detect_every
        cfg = CadenceConfig(base=k, max_every=self.cfg.max_detect_every or 2 * k)   # checked for every model
        return DetectCadence(cfg) if self.tracks is not None else None

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
            frames = self.stage.get(timeout)
            for prepared in frames:
                for batch in self._ingest(prepared):
                    self._run_batch(batch)
            expired = self.batcher.poll()
            if expired is not None:
                self._run_batch(expired)
            self._collect()
            self._drain_source_events()
            self._check_stale()
            if self.clock() >= next_status:
                self._status()
                next_status += cfg.status_interval_s * max(1, int((self.clock() - next_status)
                                                                   // cfg.status_interval_s) + 1)
            if not frames and self.stage.finished and not (self.window and len(self.window)):
                return "all sources ended"

    def _in_flight_depth(self) -> int:
        if self.cfg.in_flight is not None:
            if self.cfg.in_flight < 1:
                raise ValueError(f"in_flight must be >= 1 batch, got {self.cfg.in_flight}")
            if self.cfg.in_flight > 1 and not _can_overlap(self.runner):
                raise ValueError(f"in_flight {self.cfg.in_flight}: the {self.runner.name} runner has no asynchronous "
                                 f"inference; only the triton backend keeps several batches in flight")
            return self.cfg.in_flight
        return ASYNC_IN_FLIGHT if _can_overlap(self.runner) and not self.device_input else 1

    def _roi_summary(self) -> dict:
        if self.stage is None:
            return {}
        name = getattr(self.detector, "name", type(self.detector).__name__) if self.detector is not None else None
        return {"detector": name, "detect_every": self.cfg.detect_every if self.detector is not None else None,
                "max_detect_every": (self.cfg.max_detect_every or 2 * self.cfg.detect_every)
                if self.detector is not None else None,
                **self.stage.stats.as_dict()}

    def _finish(self, stop_reason: str) -> RunSummary:
        duration = self._t()
        stats = self.group.stats()
        streams = {sid: self._stream_status(sid, stats) for sid in self.source_state}
        overall = self.latency.overall()
        overall["dropped"] = sum(st["dropped"] for st in streams.values())   # reader drops included
        summary = RunSummary(duration, streams, overall, dict(self.batch_sizes),
                             dict(self.batch_reasons), list(self.batch_log), stop_reason, list(self.events),
                             list(self.frame_records), model=self.model_name, backend=self.runner.name,
                             events_total=self.events_total, roi=self._roi_summary())
        self._emit(make_record("summary", duration, duration_s=duration, model=self.model_name,
                               backend=self.runner.name, batches={**summary.batches(), "max_batch":
                               self.batcher.max_batch
                                                                    if self.batcher else None,
                                                                    "max_wait_ms": self.max_wait_ms}, streams=streams,
                               latency_ms=summary.overall["latency_ms"], stop_reason=stop_reason))
        summary.events, summary.events_total = list(self.events), self.events_total   # with the summary record
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


def _can_overlap(runner: Runner) -> bool:
    """The runner can keep batches in flight: ``infer_async(batch) -> Future`` and ``wait(future) -> logits``."""
    return callable(getattr(runner, "infer_async", None)) and callable(getattr(runner, "wait", None))
