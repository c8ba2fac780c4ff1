"""Video files (mp4, mkv, avi, mov, webm, ...): paced at their own frame rate (replay a recording as if live) or
unpaced (as fast as decoding goes, for benchmarks), optionally looped."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import cv2

from fakewatch.streams.capture import as_bgr, sane_fps
from fakewatch.streams.ffmpeg_options import file_options
from fakewatch.streams.source import RawRead, Source, SourceError, decode_params

# How far paced playback may fall behind its clock before it re-anchors instead of bursting to catch up.
MAX_PACING_LAG_S = 0.5
# A jump forward in the file's timestamps larger than this is a gap/discontinuity, not a reason to sleep.
MAX_PACING_GAP_S = 2.0


class FileSource(Source):
    """A video file.

    Options: `pace` (default True: hold the file's frame rate; False: as fast as possible), `loop` (start over at
    EOF instead of ending), `fps` (override the container's frame rate for pacing), `lossless` (the reader waits
    for the consumer instead of dropping; default = not `pace`, so benchmarks see every frame).
    `source_ts` is the frame's presentation time in seconds (plus the file duration per completed loop).
    """

    kind = "file"
    live = False

    def __init__(self, uri: str, source_id: str | None = None, *, pace: bool = True, loop: bool = False,
                 fps: float | None = None, lossless: bool | None = None) -> None:
        path = uri[len("file://"):] if str(uri).startswith("file://") else str(uri)
        super().__init__(uri, source_id if source_id is not None else path)
        self.path = Path(os.path.expanduser(path))
        self.pace, self.loop = bool(pace), bool(loop)
        self.lossless = (not self.pace) if lossless is None else bool(lossless)
        if fps is not None and not (0 < fps <= 1000):
            raise SourceError(f"file {self.uri}: fps must be in (0, 1000], got {fps}")
        self._fps_override = fps
        self.frame_count: int | None = None
        self._cap: Any = None
        self._probe()

    def _fail(self, why: str) -> SourceError:
        return SourceError(f"file {self.uri}: {why}")

    def _probe(self) -> None:
        """Fail now (not in the reader thread) on a missing path or a file OpenCV cannot decode."""
        p = self.path
        if not p.exists():
            parent = p.parent if str(p.parent) else Path(".")
            hint = (f"directory {parent} exists; " if parent.is_dir() else f"directory {parent} does not exist; ")
            raise self._fail(f"no such file ({hint}absolute path tried: {p.resolve()}). Pass an existing video file, "
                             f"a webcam index, an rtsp:// or http:// URL, or 'demo'.")
        if p.is_dir():
            raise self._fail("is a directory, not a video file")
        if not os.access(p, os.R_OK):
            raise self._fail("exists but is not readable by this user")
        with file_options():   # never under a network open's demuxer options
            cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                raise self._fail(f"not a video OpenCV can open (tried the FFmpeg backend on {p.stat().st_size} "
                                 f"bytes). Convert it, e.g. ffmpeg -i '{p.name}' -c:v libx264 out.mp4")
            ok, image = cap.read()
            if not ok or image is None:
                raise self._fail("opened, but no frame could be decoded (tried the FFmpeg backend). The file may be "
                                 "truncated, audio-only, or use a codec this OpenCV build lacks.")
            self.height, self.width = image.shape[:2]
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = n if n > 0 else None
            self.fps = self._fps_override or sane_fps(cap.get(cv2.CAP_PROP_FPS))
        finally:
            cap.release()
        if self.pace and self.fps is None:
            raise self._fail("the file does not say its frame rate, so it cannot be paced; pass fps=<rate> or "
                             "pace=False")

    # -- Source API ------------------------------------------------------------------------------------------------
    def open(self) -> None:
        self.close()
        with file_options():
            cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, decode_params(self.decode_threads))
        if not cap.isOpened():
            cap.release()
            raise self._fail("could not be reopened (deleted or replaced since it was checked?)")
        self._cap = cap
        self._loops = 0
        self._loop_offset_s = 0.0     # added to source_ts after each loop so it keeps increasing
        self._last_ts = 0.0
        self._index = 0               # frames read since the pacing anchor
        self._anchor: float | None = None   # monotonic time of the anchor frame
        self._anchor_ts = 0.0               # media time of the anchor frame

    def read(self) -> RawRead | None:
        if self._cap is None:
            raise self._fail("read() before open()")
        ok, image = self._cap.read()
        if not ok or image is None:
            if not self.loop:
                return None          # clean EOF
            if not self._restart():
                return None
            ok, image = self._cap.read()
            if not ok or image is None:
                raise self._fail("looping: no frame after seeking back to the start")
        media_ts = self._media_ts()
        if self.pace:
            self._wait_until(media_ts)
        self._index += 1
        return RawRead(as_bgr(image), source_ts=media_ts)

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _media_ts(self) -> float:
        """Presentation time of the frame just read; falls back to index/fps when the container gives nonsense."""
        pos = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        fps = self.fps or 25.0
        local = pos if pos >= 0 and (self._index == 0 or pos > self._last_ts - self._loop_offset_s) else None
        if local is None:
            local = (self._last_ts - self._loop_offset_s) + 1.0 / fps
        ts = local + self._loop_offset_s
        self._last_ts = ts
        return ts

    def _restart(self) -> bool:
        period = 1.0 / (self.fps or 25.0)
        self._loop_offset_s = self._last_ts + period
        self._loops += 1
        self._index = 0
        if self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            return True
        self._cap.release()
        with file_options():
            self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, decode_params(self.decode_threads))
        return bool(self._cap.isOpened())

    def _wait_until(self, media_ts: float) -> None:
        now = time.monotonic()
        if self._anchor is None:
            self._anchor, self._anchor_ts = now, media_ts
            return
        due = self._anchor + (media_ts - self._anchor_ts)
        if 0 < due - now <= MAX_PACING_GAP_S:
            time.sleep(due - now)
        elif due - now > MAX_PACING_GAP_S or now - due > MAX_PACING_LAG_S:
            # decoding could not keep up (or the process stalled), or the timestamps jumped: re-anchor instead of
            # bursting frames out / sleeping for ages
            self._anchor, self._anchor_ts = now, media_ts
