"""The ROI stage of the watch pipeline, in its own thread: newest frames -> face detection (batched across streams)
+ tracking -> crop/preprocess -> a bounded queue the inference loop reads.

Stages, each in its own thread so none waits on another:

    readers (decode, newest frame wins)  ->  RoiStage (detect every K + track, crop, preprocess)  ->  queue
        ->  pipeline loop (batch, infer, decide, sinks)

While the loop runs inference on batch N, this thread is already detecting and preprocessing the frames of batch
N+1 (ONNX Runtime, OpenVINO and OpenCV release the GIL while they compute). The queue holds at most ``queue_size``
prepared frames; when inference falls behind, ``put`` waits, the readers keep replacing their one frame with the
newest, and the skipped frames are counted as drops, as before. Frames are stamped ``dequeue`` / ``roi`` /
``preprocess`` here, the rest of the stamps in the loop.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.core.preprocess import preprocess
from fakewatch.core.roi import Box, FaceDetector, full_box
from fakewatch.runtime.detect_cadence import DetectCadence
from fakewatch.runtime.tracking import FaceTracks, Track

_WAKE: Any = object()     # put by wake(): ends a get() early, never returned


@dataclass
class Prepared:
    """One frame after the ROI stage."""

    frame: Any
    stream_ts: float
    boxes: list[Box]
    tracks: list[Track] = field(default_factory=list)   # face ROI: one per box, same order
    rows: np.ndarray | None = None                      # (len(boxes), 3, H, W) model inputs; None = on device


@dataclass
class DetectorStats:
    """Detector cost as the benchmark reports it."""

    frames: int = 0        # frames through the stage
    runs: int = 0          # frames that went through the detector
    calls: int = 0         # detector calls (one call may hold several streams' frames)
    ms: float = 0.0        # time inside the detector, all calls
    frames_at: dict[int, int] = field(default_factory=dict)   # frames prepared at each detect-every (cadence)

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "detector_frames": self.runs, "detector_calls": self.calls,
                "frames_at_detect_every": {str(k): v for k, v in sorted(self.frames_at.items())},
                "detector_share": round(self.runs / self.frames, 4) if self.frames else 0.0,
                "detector_ms_per_call": round(self.ms / self.calls, 3) if self.calls else 0.0,
                "detector_ms_per_frame": round(self.ms / self.frames, 3) if self.frames else 0.0}


class RoiStage:
    """Runs in one daemon thread between :meth:`start` and :meth:`stop`; :meth:`get` hands prepared frames over."""

    def __init__(self, group: Any, spec: ModelSpec, tracks: FaceTracks | None, detector: FaceDetector | None,
                 *, live: dict[str, bool], on_host: bool = True, max_rows: int = 16, queue_size: int = 4,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = 0.05,
                 cadence: DetectCadence | None = None) -> None:
        if spec.roi == "face" and (tracks is None or detector is None):
            raise ValueError("a face-ROI model needs a detector and tracks")
        self.group = group
        self.spec = spec
        self.tracks = tracks
        self.detector = detector
        self.live = live
        self.on_host = on_host
        self.max_rows = max_rows
        self.clock = clock
        self.poll_s = poll_s
        self.cadence = cadence
        self.stats = DetectorStats()
        self._q: queue.Queue[Prepared] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._done = threading.Event()        # the thread has ended (sources finished, stopped, or failed)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ consumer side
    def start(self) -> "RoiStage":
        self._thread = threading.Thread(target=self._run, name="fakewatch-roi", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def get(self, timeout: float) -> list[Prepared]:
        """Every prepared frame waiting, after up to ``timeout`` s for the first (or a :meth:`wake`).
        Re-raises the stage's error."""
        out: list[Prepared] = []
        try:
            out.append(self._q.get(timeout=max(0.0, timeout)) if timeout > 0 else self._q.get_nowait())
            while True:
                out.append(self._q.get_nowait())
        except queue.Empty:
            pass
        out = [p for p in out if p is not _WAKE]
        if not out and self._error is not None:
            raise self._error
        return out

    def wake(self) -> None:
        """End a waiting :meth:`get` early (any thread): an asynchronous inference answered."""
        try:
            self._q.put_nowait(_WAKE)
        except queue.Full:      # frames are waiting: get() returns at once anyway
            pass

    @property
    def finished(self) -> bool:
        """The stage has ended and everything it prepared has been taken."""
        return self._done.is_set() and self._q.empty()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frames = self.group.wait_frames(self.poll_s)
                if not frames:
                    if self.group.all_finished:
                        return
                    continue
                for p in self.prepare(frames):
                    self._put(p)
        except BaseException as exc:   # handed to the loop, which fails the run with it
            self._error = exc
        finally:
            self._done.set()

    def _put(self, p: Prepared) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(p, timeout=self.poll_s)
                return
            except queue.Full:
                continue

    def prepare(self, frames: Sequence[Any]) -> list[Prepared]:
        """Detection (one batched call for the streams that are due), tracking, crops, preprocessing."""
        now = self.clock()
        for f in frames:
            f.stamp("dequeue", now)
        stamps = [f.source_ts if (f.source_ts is not None and not self.live.get(f.source_id, True))
                  else f.capture_ts for f in frames]   # files: media time (reproducible); live: arrival time
        self.stats.frames += len(frames)
        if self.cadence is not None:
            lost = sum(self.cadence.lost_before(f.source_id, f.seq) for f in frames)
            self.cadence.observe(now, len(frames), lost)
            self.stats.frames_at = dict(self.cadence.frames_at)
        if self.spec.roi == "full":
            results = [([full_box(f.image)], []) for f in frames]
        else:
            results = self._track(frames, stamps)
        out = []
        for f, ts, (boxes, tracks) in zip(frames, stamps, results):
            boxes, tracks = boxes[: self.max_rows], tracks[: self.max_rows]
            f.stamp("roi", self.clock())
            rows = None
            if boxes and self.on_host:
                rows = preprocess([f.image] * len(boxes), boxes, self.spec)
            f.stamp("preprocess", self.clock())
            out.append(Prepared(f, ts, boxes, tracks, rows))
        return out

    def _track(self, frames: Sequence[Any], stamps: Sequence[float]) -> list[tuple[list[Box], list[Track]]]:
        tr, det = self.tracks, self.detector
        k = self.cadence.k if self.cadence is not None else 1
        due = [i for i, f in enumerate(frames) if tr.due(f.source_id, f.image.shape[:2], at_least=k)]
        found: dict[int, list] = {}
        if due:
            t0 = time.perf_counter()
            images = [frames[i].image for i in due]
            batch = det.detect_batch(images) if hasattr(det, "detect_batch") else [det.detect(im) for im in images]
            self.stats.ms += (time.perf_counter() - t0) * 1e3
            self.stats.calls += 1
            self.stats.runs += len(due)
            found = dict(zip(due, batch))
        out = []
        for i, (f, ts) in enumerate(zip(frames, stamps)):
            shape = f.image.shape[:2]
            tracks = tr.update(f.source_id, shape, ts, found[i]) if i in found else tr.predict(f.source_id, shape, ts)
            out.append((tr.crops(tracks, shape), tracks))
        return out
