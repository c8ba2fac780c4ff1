"""The live dashboard's state: one tile per camera (newest frame, verdict, source status, score history, stats) and
the newest FAKE events, fed by the monitoring hub (runtime/monitor.py) and read by the HTTP server
(runtime/http_server.py).

Costs stay off the inference thread: the pipeline-thread hooks only keep a *reference* to the newest frame (the
readers allocate a new array per frame, so nothing is copied) and append small records. JPEGs are encoded by the
server's request threads, lazily, at most ``jpeg_fps`` times a second per camera however many pages poll; every
other request gets the cached bytes. Everything is bounded: one frame slot per camera, ``history_s`` of score
points, ``max_events`` events, a queue per live-update client.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from fakewatch.runtime.monitor import Output
from fakewatch.runtime.snapshots import encode_jpeg
from fakewatch.runtime.sse import Broadcaster

#: verdict -> box colour (BGR): the colour the page uses for the state badge too
VERDICT_BGR = {"FAKE": (40, 40, 230), "REAL": (60, 180, 60), "UNKNOWN": (160, 160, 160)}
#: events whose raw frame is kept for in-memory evidence (without --snapshots) until a request encodes it
KEEP_FRAMES = 16


@dataclass(frozen=True)
class DashboardSettings:
    jpeg_fps: float = 4.0          # newest-frame encodes per camera per second, at most
    jpeg_width: int = 640          # frames are downscaled to this width (never upscaled)
    jpeg_quality: int = 75
    history_s: float = 300.0       # score sparkline span
    history_hz: float = 2.0        # score points per second kept
    max_events: int = 100          # newest events listed (and kept in memory)
    sse_clients: int = 8           # live-update streams at once; more get 503
    sse_queue: int = 256           # messages buffered per live-update client; a client that falls behind is cut

    def __post_init__(self) -> None:
        checks = {"jpeg_fps": self.jpeg_fps > 0, "jpeg_width": self.jpeg_width >= 32,
                  "jpeg_quality": 1 <= self.jpeg_quality <= 100, "history_s": self.history_s > 0,
                  "history_hz": self.history_hz > 0, "max_events": self.max_events >= 1,
                  "sse_clients": self.sse_clients >= 1, "sse_queue": self.sse_queue >= 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"dashboard settings out of range: {', '.join(f'{k}={getattr(self, k)}' for k in bad)} "
                             f"(jpeg_fps > 0, jpeg_width >= 32, jpeg_quality 1..100, the rest >= 1)")


@dataclass
class _Slot:
    """The newest decided frame of a camera, by reference (encoded only when someone asks)."""
    image: Any
    seq: int
    boxes: list
    probs: list[float]
    track_ids: list[int]
    state: str


@dataclass
class CameraTile:
    name: str
    state: str = "UNKNOWN"
    score: float | None = None
    status: str = "connecting"
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    slot: _Slot | None = None
    history: deque = field(default_factory=deque)   # (unix time, rolling score or None)
    jpeg: bytes | None = None
    jpeg_seq: int = -1
    jpeg_at: float = -math.inf
    encodes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)   # one encoder per camera at a time

    def as_dict(self, history: bool = True) -> dict[str, Any]:
        st = self.stats
        lat = (st.get("latency_ms") or {}).get("total") or {}
        d = {"name": self.name, "state": self.state, "score": _round(self.score), "status": self.status,
             "message": self.message, "fps": st.get("fps"), "frames": st.get("frames"), "dropped": st.get("dropped"),
             "no_face": st.get("no_face"), "latency_ms": {"p50": lat.get("p50"), "p99": lat.get("p99")},
             "seq": self.slot.seq if self.slot is not None else None,
             "faces": [{"box": b, "track": t, "p_fake": _round(p)} for b, t, p in self._faces()]}
        if history:
            d["history"] = [[round(t, 2), _round(s)] for t, s in list(self.history)]
        return d

    def _faces(self) -> list[tuple]:
        s = self.slot
        if s is None:
            return []
        ids = list(s.track_ids) + [None] * (len(s.boxes) - len(s.track_ids))
        probs = list(s.probs) + [None] * (len(s.boxes) - len(s.probs))
        return [(_box_of(b), t, p) for b, t, p in zip(s.boxes, ids, probs)]


@dataclass
class EventEntry:
    id: str
    type: str                      # the last event type seen: new / update / end
    after: dict[str, Any]
    # in-memory evidence when no --snapshots store writes files: the frame that started (or peaked) the episode
    frame: Any = None
    box: list[int] | None = None
    jpeg: dict[str, bytes] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        a = self.after
        has = bool(a.get("has_snapshot")) or self.frame is not None or bool(self.jpeg)
        return {"id": self.id, "type": self.type, "camera": a.get("camera"), "label": a.get("label"),
                "score": a.get("score"), "top_score": a.get("top_score"), "start_time": a.get("start_time"),
                "end_time": a.get("end_time"), "box": a.get("box"), "face_id": a.get("face_id"),
                "has_snapshot": has, "has_clip": bool(a.get("has_clip")), "model": a.get("model")}


class Dashboard(Output):
    """A monitoring output that keeps what the page shows. Hooks run on the pipeline thread and only store
    references and small records; the read methods (``cameras``, ``latest_jpeg``, ``events`` ...) run on the HTTP
    server's threads."""

    name = "dashboard"

    def __init__(self, settings: DashboardSettings | None = None, threshold: float = 0.5,
                 wall: Any = time.time, clock: Any = time.monotonic) -> None:
        self.settings = settings or DashboardSettings()
        self.threshold = threshold
        self.wall, self.clock = wall, clock
        self.model = self.backend = ""
        self.tiles: dict[str, CameraTile] = {}
        self.events: OrderedDict[str, EventEntry] = OrderedDict()
        self.broadcast = Broadcaster(self.settings.sse_clients, self.settings.sse_queue)
        self._lock = threading.Lock()            # tiles/events dict shape (values are replaced whole)
        self._next_point: dict[str, float] = {}
        self._history_len = max(2, int(self.settings.history_s * self.settings.history_hz))
        self.server: Any = None                  # runtime/http_server.DashboardServer, started and closed with us

    # ------------------------------------------------------------------ hooks (pipeline thread)
    def start(self, info: Mapping[str, Any]) -> None:
        self.model, self.backend = str(info.get("model", "")), str(info.get("backend", ""))
        for cam in info.get("cameras", ()):
            self._tile(cam)
        if self.server is not None:
            self.server.start()
            s = self.server.settings
            print(f"fakewatch watch: dashboard at {self.server.url}"
                  + (" (token required)" if s.token else ""), file=sys.stderr)
            if s.public and not s.token:
                print(f"fakewatch watch: warning: the dashboard listens on {s.host}, beyond this machine, without a "
                      f"token; anyone who can reach it sees the cameras (set --http-token or dashboard.token)",
                      file=sys.stderr)

    def _tile(self, cam: str) -> CameraTile:
        tile = self.tiles.get(cam)
        if tile is None:
            with self._lock:
                tile = self.tiles.setdefault(cam, CameraTile(cam, history=deque(maxlen=self._history_len)))
        return tile

    def frame(self, view: Any) -> None:
        tile = self._tile(view.stream)
        tile.slot = _Slot(view.image, view.seq, list(view.boxes), list(view.face_probs),
                          list(getattr(view, "track_ids", ()) or ()), view.state)   # one assignment: atomic
        now = self.clock()
        if now >= self._next_point.get(view.stream, -math.inf):
            self._next_point[view.stream] = now + 1.0 / self.settings.history_hz
            score = None if view.state == "UNKNOWN" else float(view.score)
            point = (self.wall(), score)
            tile.history.append(point)
            self.broadcast.publish("score", {"camera": view.stream, "point": [round(point[0], 2), _round(score)]})

    def state(self, camera: str, state: str, score: float | None) -> None:
        tile = self._tile(camera)
        tile.state, tile.score = state, score
        self.broadcast.publish("state", {"camera": camera, "state": state, "score": _round(score)})

    def status(self, camera: str, status: str, message: str) -> None:
        tile = self._tile(camera)
        tile.status, tile.message = status, message
        self.broadcast.publish("status", {"camera": camera, "status": status, "message": message})

    def camera_stats(self, camera: str, stats: Mapping[str, Any]) -> None:
        tile = self._tile(camera)
        tile.stats = dict(stats)
        if stats.get("score") is not None and tile.state != "UNKNOWN":
            tile.score = stats.get("score")
        self.broadcast.publish("camera", tile.as_dict(history=False))

    def event(self, event: Mapping[str, Any]) -> None:
        after = dict(event["after"])
        eid = str(after["id"])
        with self._lock:
            entry = self.events.get(eid)
            if entry is None:
                entry = self.events[eid] = EventEntry(eid, event["type"], after)
            entry.type, entry.after = event["type"], after
            self.events.move_to_end(eid)
            while len(self.events) > self.settings.max_events:
                self.events.popitem(last=False)
        if not after.get("has_snapshot") and event["type"] in ("new", "update"):
            # no evidence files: keep the frame that made the event (the hub calls frame() before event())
            slot = self.tiles[after["camera"]].slot if after.get("camera") in self.tiles else None
            if slot is not None:
                entry.frame, entry.box, entry.jpeg = slot.image, after.get("box"), {}
            self._bound_frames()
        self.broadcast.publish("event", entry.as_dict())

    def _bound_frames(self) -> None:
        """Raw evidence frames are kept for the newest KEEP_FRAMES events only (a 1080p frame is 6 MB); a request
        turns them into JPEG bytes and lets the frame go."""
        with self._lock:
            held = [e for e in reversed(self.events.values()) if e.frame is not None]
        for e in held[KEEP_FRAMES:]:
            e.frame = None

    def close(self) -> None:
        self.broadcast.close()
        if self.server is not None:
            self.server.close()

    # ------------------------------------------------------------------ reads (server threads)
    def cameras(self) -> list[dict[str, Any]]:
        with self._lock:
            tiles = list(self.tiles.values())
        return [t.as_dict() for t in tiles]

    def camera_names(self) -> list[str]:
        with self._lock:
            return list(self.tiles)

    def tile(self, name: str) -> CameraTile | None:
        with self._lock:
            return self.tiles.get(name)

    def latest_jpeg(self, name: str) -> tuple[bytes, int] | None:
        """(JPEG bytes, frame seq) of the camera's newest frame with its face boxes, or None before the first frame.
        Encoded at most ``jpeg_fps`` times a second; a repeated request gets the cached bytes."""
        tile = self.tile(name)
        if tile is None:
            raise KeyError(name)
        with tile.lock:
            slot = tile.slot
            if slot is None:
                return None
            now = self.clock()
            fresh = tile.jpeg is not None and (slot.seq == tile.jpeg_seq
                                                or now - tile.jpeg_at < 1.0 / self.settings.jpeg_fps)
            if not fresh:
                tile.jpeg = self._encode_frame(slot, tile.state)
                tile.jpeg_seq, tile.jpeg_at = slot.seq, now
                tile.encodes += 1
            return tile.jpeg, tile.jpeg_seq

    def _encode_frame(self, slot: _Slot, state: str) -> bytes:
        import cv2

        image, scale = _downscaled(slot.image, self.settings.jpeg_width)
        ids = list(slot.track_ids) + [None] * len(slot.boxes)
        probs = list(slot.probs) + [None] * len(slot.boxes)
        for box, tid, p in zip(slot.boxes, ids, probs):
            verdict = state if p is None else ("FAKE" if p >= self.threshold else "REAL")
            x0, y0, x1, y1 = (int(round(v * scale)) for v in _box_of(box))
            colour = VERDICT_BGR.get(verdict, VERDICT_BGR["UNKNOWN"])
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
            label = " ".join(x for x in (f"#{tid}" if tid is not None else "", f"{p:.2f}" if p is not None else "")
                             if x)
            if label:
                # above the box, or inside its top edge when the box touches the top of the frame
                y = y0 - 4 if y0 >= 14 else y0 + 13
                cv2.putText(image, label, (x0 + 2, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
        return encode_jpeg(image, self.settings.jpeg_quality)

    def event_list(self, limit: int | None = None, camera: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(reversed(self.events.values()))     # newest first
        if camera is not None:
            entries = [e for e in entries if e.after.get("camera") == camera]
        return [e.as_dict() for e in entries[:limit]]

    def event_ids(self) -> list[str]:
        with self._lock:
            return list(self.events)

    def evidence(self, event_id: str, kind: str) -> bytes | None:
        """The event's ``frame`` (full frame with the face box) or ``crop`` JPEG: the evidence file when a snapshot
        store wrote one, else the in-memory frame, encoded once. None when the event has no evidence (yet)."""
        with self._lock:
            entry = self.events.get(event_id)
        if entry is None:
            raise KeyError(event_id)
        path = (entry.after.get("snapshot") or {}).get(kind)
        if path:
            try:
                return Path(path).read_bytes()
            except OSError:
                return None          # the writer thread has not written it yet
        frame = entry.frame
        if kind not in entry.jpeg and frame is not None:
            # both kinds at once, then the frame can go: memory holds JPEG bytes, not raw frames
            entry.jpeg = {k: self._encode_evidence(frame, entry.box, k) for k in ("frame", "crop")}
            entry.frame = None
        return entry.jpeg.get(kind)

    def _encode_evidence(self, frame: Any, box: list[int] | None, kind: str) -> bytes:
        import cv2

        if kind == "crop" and box is not None:
            h, w = frame.shape[:2]
            x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
            if x1 > x0 and y1 > y0:
                return encode_jpeg(frame[y0:y1, x0:x1], 90)
        image = frame.copy()
        if box is not None:
            cv2.rectangle(image, (box[0], box[1]), (box[2], box[3]), VERDICT_BGR["FAKE"], 2)
        return encode_jpeg(image, 90)


def _downscaled(image: Any, width: int) -> tuple[Any, float]:
    import cv2

    h, w = image.shape[:2]
    if w <= width:
        return image.copy(), 1.0          # boxes are drawn on it: never on the reader's array
    scale = width / w
    return cv2.resize(image, (width, max(1, int(round(h * scale)))), interpolation=cv2.INTER_AREA), scale


def _box_of(box: Any) -> list[int]:
    return [int(round(v)) for v in _box_xyxy(box)]


def _box_xyxy(box: Any) -> Iterable[float]:
    if hasattr(box, "x0"):
        return box.x0, box.y0, box.x1, box.y1
    return tuple(box)[:4]


def _round(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 4)

