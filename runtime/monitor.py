"""Monitoring hub: the pipeline's records and frames -> camera states, source statuses and FAKE episodes, fanned out
to outputs (MQTT, webhooks, Prometheus; evidence snapshots are taken here, when an episode starts or peaks).

Conventions follow Frigate NVR (see docs/monitoring.md): an *episode* is one FAKE stretch of one camera; it produces
an event ``{"type": "new" | "update" | "end", "before": {...}, "after": {...}}``. ``update`` is sent only when
something meaningful changed (the top score rose by ``update_delta``, so a new best snapshot was taken). A camera
that ends, goes stale, reconnects or fails is ``UNKNOWN``, never its last verdict.

Every output method is called on the pipeline thread: outputs queue work and return (network I/O happens in their
own threads, with bounded queues).
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from fakewatch.runtime.alerts import Sink

log = logging.getLogger("fakewatch.runtime.monitor")

#: pipeline source state -> published status (Frigate-like vocabulary: one word a dashboard can colour)
STATUS_OF = {"connecting": "connecting", "live": "live", "reconnecting": "reconnecting", "stale": "stale",
             "failed": "failed", "eof": "ended", "stopped": "ended"}
ENDED = ("failed", "ended")
FAKE, REAL, UNKNOWN = "FAKE", "REAL", "UNKNOWN"


class Output:
    """One monitoring destination. Every hook defaults to doing nothing; ``dropped`` counts what it had to drop
    (full queue, failed delivery), and is exported by the stats."""

    name = "output"
    dropped = 0

    def start(self, info: Mapping[str, Any]) -> None:
        """Called once before the pipeline runs (``info``: model, backend, cameras)."""

    def state(self, camera: str, state: str, score: float | None) -> None:
        """The camera's verdict changed (REAL / FAKE / UNKNOWN)."""

    def status(self, camera: str, status: str, message: str) -> None:
        """The camera's source status changed (live, reconnecting, stale, failed, ended, connecting)."""

    def event(self, event: Mapping[str, Any]) -> None:
        """A FAKE episode event (new / update / end)."""

    def camera_stats(self, camera: str, stats: Mapping[str, Any]) -> None:
        """A periodic status record of one camera (fps, frames, dropped, latency, score)."""

    def stats(self, stats: Mapping[str, Any]) -> None:
        """The periodic service stats (every ``stats_interval_s``)."""

    def frame(self, view: Any) -> None:
        """Every decided frame (a pipeline ``FrameView``)."""

    def batch(self, rows: int, reason: str) -> None:
        """Every batch run."""

    def close(self) -> None:
        """Flush and stop (bounded time)."""


@dataclass
class Episode:
    id: str
    camera: str
    start_time: float                 # Unix seconds
    score: float
    top_score: float
    frame_time: float
    box: list[int] | None
    face_id: int | None
    model: str
    snapshot: dict[str, str] | None = None
    clip: str | None = None
    end_time: float | None = None
    sent_top: float = 0.0             # top_score of the last event sent
    sent: dict[str, Any] | None = None  # the last event's "after": the next event's "before" (as Frigate does)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "camera": self.camera, "label": "fake", "score": round(self.score, 4),
                "top_score": round(self.top_score, 4), "start_time": round(self.start_time, 3),
                "end_time": None if self.end_time is None else round(self.end_time, 3),
                "frame_time": round(self.frame_time, 3), "box": self.box, "face_id": self.face_id,
                "has_snapshot": self.snapshot is not None, "snapshot": self.snapshot,
                "has_clip": self.clip is not None, "clip": self.clip, "model": self.model}


def new_event_id(ts: float) -> str:
    """Frigate's shape: start timestamp + a random suffix (sortable, unique across restarts)."""
    return f"{ts:.6f}-{secrets.token_hex(3)}"


@dataclass
class CameraView:
    state: str = UNKNOWN
    score: float | None = None
    status: str = "connecting"
    stats: dict[str, Any] = field(default_factory=dict)
    episode: Episode | None = None


class Monitor(Sink):
    """A pipeline sink that drives the monitoring outputs. ``snapshots`` (optional) is a
    :class:`fakewatch.runtime.snapshots.SnapshotStore`; ``clips`` a :class:`fakewatch.runtime.snapshots.ClipRecorder`.
    """

    wants_frames = True

    def __init__(self, outputs: Sequence[Output], model: str = "", backend: str = "", snapshots: Any = None,
                 clips: Any = None, update_delta: float = 0.05, stats_interval_s: float = 60.0,
                 cameras: Sequence[str] = (), wall: Any = time.time, clock: Any = time.monotonic) -> None:
        if update_delta <= 0:
            raise ValueError(f"update_delta must be > 0, got {update_delta}")
        self.outputs = list(outputs)
        self.model, self.backend = model, backend
        self.snapshots, self.clips = snapshots, clips
        self.update_delta = update_delta
        self.stats_interval_s = stats_interval_s
        self.wall, self.clock = wall, clock
        self.cameras: dict[str, CameraView] = {c: CameraView() for c in cameras}
        self.events_sent = 0
        self._started_at = clock()
        self._next_stats = self._started_at + stats_interval_s if stats_interval_s > 0 else float("inf")
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Monitor":
        info = {"model": self.model, "backend": self.backend, "cameras": list(self.cameras)}
        started: list[Output] = []
        try:
            for out in self.outputs:
                out.start(info)
                started.append(out)
        except Exception:
            for out in started:
                _safe(out.close)
            raise
        for cam in self.cameras:               # nothing is known yet: say so, never a leftover retained verdict
            self._each("state", cam, UNKNOWN, None)
            self._each("status", cam, "connecting", "starting")
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for cam, view in self.cameras.items():
            self._end_episode(cam, view)
            if view.state != UNKNOWN:
                view.state = UNKNOWN
                self._each("state", cam, UNKNOWN, None)
            if view.status not in ENDED:
                view.status = "ended"
                self._each("status", cam, "ended", "fakewatch stopped")
        for store in (self.snapshots, self.clips):
            if store is not None:
                _safe(store.close)
        for out in self.outputs:
            _safe(out.close)

    # ------------------------------------------------------------------ records (pipeline thread)
    def emit(self, record: Mapping[str, Any]) -> None:
        kind = record.get("type")
        cam = record.get("stream")
        if cam is not None:
            view = self.cameras.setdefault(cam, CameraView())
            if kind == "state":
                self._set_state(cam, view, record["state"], record.get("score"))
            elif kind == "source":
                status = STATUS_OF.get(record["state"], record["state"])
                if status != view.status:
                    view.status = status
                    self._each("status", cam, status, record.get("message", ""))
                if status in ENDED:          # no more frames: no verdict either
                    self._set_state(cam, view, UNKNOWN, None)
            elif kind == "status":
                view.stats = {k: record.get(k) for k in ("state", "score", "fps", "frames", "dropped", "no_face",
                                                         "latency_ms")}
                view.stats["status"] = view.status
                self._each("camera_stats", cam, view.stats)
        self._maybe_stats()

    def _set_state(self, cam: str, view: CameraView, state: str, score: float | None) -> None:
        if state != FAKE:
            self._end_episode(cam, view)
        if state != view.state:
            view.state, view.score = state, score
            self._each("state", cam, state, score)

    def _maybe_stats(self) -> None:
        now = self.clock()
        if now < self._next_stats:
            return
        self._next_stats = now + self.stats_interval_s
        stats = _safe(self.service_stats)
        if stats is not None:
            self._each("stats", stats)

    def service_stats(self) -> dict[str, Any]:
        return {"service": {"uptime_s": round(self.clock() - self._started_at, 3), "model": self.model,
                            "backend": self.backend, "events": self.events_sent},
                "cameras": {c: {"state": v.state, "status": v.status, **{k: x for k, x in v.stats.items()
                                                                        if k not in ("state", "status")}}
                            for c, v in self.cameras.items()},
                "outputs": {o.name: {"dropped": int(o.dropped)} for o in self.outputs}}

    # ------------------------------------------------------------------ frames (pipeline thread)
    def frame(self, view: Any) -> None:
        if self.clips is not None:
            self.clips.add(view)
        for out in self.outputs:
            _safe(out.frame, view)
        if view.state != FAKE:
            return
        cam = self.cameras.setdefault(view.stream, CameraView())
        face = _best_face(view.face_probs)
        score = float(view.score)
        frame_score = view.face_probs[face] if face is not None else score
        ep = cam.episode
        if ep is None:
            now = self.wall()
            ep = cam.episode = Episode(new_event_id(now), view.stream, now, score, frame_score, now,
                                       _box(view, face), face, self.model)
            if self.snapshots is not None:
                ep.snapshot = _safe(self.snapshots.save, ep.id, view, face)
            if self.clips is not None:
                ep.clip = _safe(self.clips.trigger, view.stream, ep.id)
            ep.sent_top = ep.top_score
            self._send("new", ep)
            return
        ep.score = score
        if frame_score > ep.top_score:
            ep.top_score, ep.frame_time, ep.box, ep.face_id = frame_score, self.wall(), _box(view, face), face
        if ep.top_score >= ep.sent_top + self.update_delta:      # meaningful: a clearly better piece of evidence
            if self.snapshots is not None:
                ep.snapshot = _safe(self.snapshots.save, ep.id, view, face) or ep.snapshot
            ep.sent_top = ep.top_score
            self._send("update", ep)

    def batch(self, rows: int, reason: str) -> None:
        for out in self.outputs:
            _safe(out.batch, rows, reason)

    # ------------------------------------------------------------------ episodes
    def _end_episode(self, cam: str, view: CameraView) -> None:
        ep = view.episode
        if ep is None:
            return
        ep.end_time = self.wall()
        view.episode = None
        self._send("end", ep)

    def _send(self, kind: str, ep: Episode) -> None:
        after = ep.as_dict()
        before, ep.sent = ep.sent or after, after
        self.events_sent += 1
        self._each("event", {"type": kind, "before": before, "after": after})

    def _each(self, hook: str, *args: Any) -> None:
        for out in self.outputs:
            _safe(getattr(out, hook), *args)


def _best_face(probs: Sequence[float]) -> int | None:
    return max(range(len(probs)), key=lambda i: probs[i]) if len(probs) else None


def _box(view: Any, face: int | None) -> list[int] | None:
    if face is None or face >= len(view.boxes):
        return None
    return [int(round(v)) for v in _xyxy(view.boxes[face])]


def _xyxy(box: Any) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a core.roi.Box (or any 4-sequence)."""
    if hasattr(box, "x0"):
        return box.x0, box.y0, box.x1, box.y1
    return tuple(box)[:4]  # type: ignore[return-value]


def _safe(fn: Any, *args: Any) -> Any:
    """An output that raises must not take the pipeline (or the other outputs) down with it."""
    try:
        return fn(*args)
    except Exception:
        log.exception("monitoring output %s failed (ignored)", getattr(fn, "__qualname__", fn))
        return None
