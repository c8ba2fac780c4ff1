"""Evidence of FAKE episodes: JPEG snapshots (full frame with the face box, and the face crop) and short clips.

Files are named by camera and event id (``<camera>-<event id>.jpg``, ``...-crop.jpg``, ``...-clip.mp4``), the way
Frigate names its clips, and their paths go into the events. A snapshot is rewritten when the episode's score peaks
(the best evidence wins). JPEGs are written to a temporary name and renamed, so a reader never sees half a file.
Old evidence is pruned by count and age. Clips come from a bounded in-memory ring buffer (``pre_s`` seconds before
the start, capped in bytes) plus ``post_s`` seconds after; they are encoded on a background thread.
"""
from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("fakewatch.runtime.snapshots")

EVIDENCE_SUFFIXES = (".jpg", ".mp4")
BOX_COLOUR = (0, 0, 255)         # BGR red: the face that made the verdict


def safe_name(camera: str) -> str:
    """A camera id as a file-name part (ids of unnamed sources are URLs or paths)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", camera).strip("._")[:64] or "camera"


def encode_jpeg(image: np.ndarray, quality: int, what: str = "an image") -> bytes:
    """JPEG bytes of a BGR image (snapshots on disk, the dashboard's frames)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"cannot encode a JPEG for {what}")
    return buf.tobytes()


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(encode_jpeg(image, quality, str(path)))
    os.replace(tmp, path)


@dataclass
class SnapshotStore:
    """``save(event_id, view, face)`` -> {"frame": path, "crop": path}, returned at once; the JPEGs are encoded and
    written by a background thread (``background=False``: in the caller) through a queue of at most ``max_pending``
    snapshots (more are dropped and counted in ``dropped``). ``keep``: newest files kept (0 = no limit);
    ``max_age_s``: older files are deleted (None = no limit). ``close()`` writes what is queued."""

    directory: Path
    quality: int = 90
    keep: int = 1000
    max_age_s: float | None = 7 * 24 * 3600.0
    prune_every_s: float = 10.0
    background: bool = True
    max_pending: int = 16

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if not 1 <= self.quality <= 100:
            raise ValueError(f"snapshots.quality must be 1..100, got {self.quality}")
        if self.keep < 0 or (self.max_age_s is not None and self.max_age_s <= 0):
            raise ValueError(f"snapshots: keep must be >= 0 and max_age > 0 (got keep={self.keep}, "
                             f"max_age_s={self.max_age_s})")
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"--snapshots {self.directory}: exists and is not a directory; pass a directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.saved = 0
        self.dropped = 0
        self._next_prune = 0.0
        self.prune()
        self._jobs: queue.Queue = queue.Queue(maxsize=max(1, self.max_pending))
        self._thread: threading.Thread | None = None
        if self.background:
            self._thread = threading.Thread(target=self._write_loop, name="fakewatch-snapshots", daemon=True)
            self._thread.start()

    def paths(self, camera: str, event_id: str) -> dict[str, Path]:
        stem = f"{safe_name(camera)}-{event_id}"
        return {"frame": self.directory / f"{stem}.jpg", "crop": self.directory / f"{stem}-crop.jpg"}

    def save(self, event_id: str, view: Any, face: int | None) -> dict[str, str]:
        paths = self.paths(view.stream, event_id)
        box = view.boxes[face] if face is not None and face < len(view.boxes) else None
        score = view.face_probs[face] if box is not None else None
        job = (paths, np.array(view.image, copy=True), box, score)   # the reader may reuse its buffer
        if self._thread is None:
            self._write(*job)
        else:
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                self.dropped += 1
                log.warning("snapshot writer busy: dropped %s", paths["frame"].name)
        return {k: str(p) for k, p in paths.items()}

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._write(*job)
            except Exception:
                log.exception("snapshot %s failed", job[0]["frame"])

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout)

    def _write(self, paths: dict[str, Path], frame: np.ndarray, box: Any, score: float | None) -> None:
        import cv2

        image = frame.copy()
        if box is not None:
            x0, y0, x1, y1 = (int(v) for v in box)
            thick = max(2, round(max(image.shape[:2]) / 300))   # 2 px at least: JPEG chroma halves colour
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), BOX_COLOUR, thick)
            label = f"FAKE {score:.2f}"
            scale = max(0.35, max(image.shape[:2]) / 800)
            (tw, th), _base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            y = y0 - 4 if y0 - 4 - th >= 0 else min(image.shape[0] - 2, y1 + th + 4)   # above the box, else below
            cv2.putText(image, label, (max(0, min(x0, image.shape[1] - tw)), y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        BOX_COLOUR, 1, cv2.LINE_AA)
            crop = frame[max(0, y0):y1, max(0, x0):x1]
        else:                                         # full-frame models: the crop is the frame
            crop = frame
        _write_jpeg(paths["frame"], image, self.quality)
        _write_jpeg(paths["crop"], np.ascontiguousarray(crop), self.quality)
        self.saved += 1
        self.prune()

    def prune(self, force: bool = False) -> int:
        """Delete evidence older than ``max_age_s`` and beyond the newest ``keep`` files. Returns files deleted."""
        now = time.monotonic()
        if not force and now < self._next_prune:
            return 0
        self._next_prune = now + self.prune_every_s
        files = []
        for p in self.directory.iterdir():
            if p.suffix in EVIDENCE_SUFFIXES and p.is_file():
                try:
                    files.append((p.stat().st_mtime, p))
                except FileNotFoundError:
                    continue
        files.sort(reverse=True)                       # newest first
        cutoff = time.time() - self.max_age_s if self.max_age_s is not None else None
        doomed = [p for i, (mtime, p) in enumerate(files)
                  if (self.keep and i >= self.keep) or (cutoff is not None and mtime < cutoff)]
        for p in doomed:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        return len(doomed)


@dataclass
class _Pending:
    path: Path
    until: float
    frames: list[tuple[float, np.ndarray]]


class ClipRecorder:
    """Per-camera ring buffer of recent frames; ``trigger`` starts a clip (the ring = ``pre_s`` seconds before, then
    ``post_s`` seconds after) and returns its path at once; the clip is encoded on a background thread.

    Memory is bounded: each ring holds at most ``pre_s`` seconds and ``max_bytes``; at most ``max_jobs`` clips wait
    for the encoder (more are dropped and counted in ``dropped``).
    """

    def __init__(self, directory: Path, pre_s: float = 2.0, post_s: float = 2.0, max_bytes: int = 64 << 20,
                 max_jobs: int = 2, clock: Any = time.monotonic) -> None:
        if pre_s < 0 or post_s < 0 or max_bytes <= 0:
            raise ValueError(f"clip: pre/post must be >= 0 s and max_bytes > 0 (got {pre_s}, {post_s}, {max_bytes})")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pre_s, self.post_s, self.max_bytes = pre_s, post_s, max_bytes
        self.clock = clock
        self.dropped = 0
        self.written: deque[str] = deque(maxlen=100)     # newest clip paths (bounded: runs last for weeks)
        self._rings: dict[str, deque[tuple[float, np.ndarray]]] = {}
        self._bytes: dict[str, int] = {}
        self._pending: dict[str, list[_Pending]] = {}
        self._jobs: queue.Queue = queue.Queue(maxsize=max_jobs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._encode_loop, name="fakewatch-clips", daemon=True)
        self._thread.start()

    def add(self, view: Any) -> None:
        cam, now, image = view.stream, view.capture_ts, view.image
        ring = self._rings.setdefault(cam, deque())
        ring.append((now, image))
        self._bytes[cam] = self._bytes.get(cam, 0) + image.nbytes
        while ring and (ring[0][0] < now - self.pre_s or self._bytes[cam] > self.max_bytes):
            _t, old = ring.popleft()
            self._bytes[cam] -= old.nbytes
        for p in list(self._pending.get(cam, ())):
            p.frames.append((now, image))
            if now >= p.until or sum(f.nbytes for _t, f in p.frames) > 2 * self.max_bytes:
                self._pending[cam].remove(p)
                self._submit(p)

    def trigger(self, camera: str, event_id: str) -> str:
        path = self.directory / f"{safe_name(camera)}-{event_id}-clip.mp4"
        ring = self._rings.get(camera, deque())
        self._pending.setdefault(camera, []).append(_Pending(path, self.clock() + self.post_s, list(ring)))
        return str(path)

    def _submit(self, p: _Pending) -> None:
        try:
            self._jobs.put_nowait(p)
        except queue.Full:
            self.dropped += 1
            log.warning("clip encoder busy: dropped %s", p.path.name)

    def _encode_loop(self) -> None:
        while not (self._stop.is_set() and self._jobs.empty()):
            try:
                p = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._encode(p)
            except Exception:
                log.exception("clip %s failed", p.path)

    def _encode(self, p: _Pending) -> None:
        import cv2

        if not p.frames:
            return
        span = p.frames[-1][0] - p.frames[0][0]
        fps = (len(p.frames) - 1) / span if span > 0 and len(p.frames) > 1 else 10.0
        h, w = p.frames[-1][1].shape[:2]
        tmp = p.path.with_name(p.path.stem + ".tmp.mp4")
        vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), max(1.0, min(fps, 60.0)), (w, h))
        try:
            for _t, img in p.frames:
                vw.write(img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h)))
        finally:
            vw.release()
        os.replace(tmp, p.path)
        self.written.append(str(p.path))

    def close(self, timeout: float = 10.0) -> None:
        """Finish clips still recording with what they have, encode them, stop the thread."""
        for plist in self._pending.values():
            for p in plist:
                self._submit(p)
        self._pending.clear()
        self._stop.set()
        self._thread.join(timeout)
