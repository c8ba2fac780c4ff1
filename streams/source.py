"""The `Source` contract every stream kind implements (webcam, RTSP/HTTP, file, demo).

A Source is a plain blocking reader; threading, dropping, reconnecting and events live in `fakewatch.streams.reader` /
`fakewatch.streams.group`. Subclasses set `kind` and `live`, and implement `open()`, `read()`, `close()`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np

from fakewatch.core.redact import redact


class SourceError(RuntimeError):
    """A source could not be opened or read. The message names the source (redacted), what was tried and what to
    do; it never contains credentials (the constructor redacts it again as a last line of defence)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(redact(message))
        # the server said no (401/403/404, a web page): retrying cannot fix a source that never worked
        self.permanent = permanent


def decode_params(threads: int) -> list[int]:
    """``cv2.VideoCapture`` open parameters for ``threads`` FFmpeg decoder threads (0 = OpenCV's default)."""
    import cv2

    return [cv2.CAP_PROP_N_THREADS, int(threads)] if threads else []


@dataclass
class SourceInfo:
    kind: str                 # "webcam", "rtsp", "http", "file", "demo", ...
    uri: str                  # redacted
    width: int | None
    height: int | None
    fps: float | None         # nominal frame rate (what the source says), None when unknown
    live: bool                # live sources reconnect; non-live ones end at EOF


@dataclass
class RawRead:
    """What `Source.read()` returns: one decoded image, before the reader wraps it into a `Frame`."""
    image: np.ndarray                   # BGR uint8 HxWx3
    source_ts: float | None = None      # source's own timestamp (seconds), e.g. the file's/stream's PTS
    truth: dict[str, Any] | None = None  # ground truth, when the source knows it (demo)


class Source(abc.ABC):
    """One stream of frames. Not thread-safe: exactly one reader thread calls open/read/close.

    Subclasses fill `width`, `height`, `fps` (in `__init__` when known up front, or in `open()`); `info` is built
    from them. `id` is the redacted, stable name used in Frames, events and stats.
    """

    kind: str = "source"
    live: bool = True
    #: FFmpeg decoder threads for sources that decode through OpenCV's FFmpeg backend (files, RTSP/HTTP); 0 = OpenCV's
    #: default (one per CPU, frame threading). Set before open(); SourceGroup sets it for the whole group.
    decode_threads: int = 0

    def __init__(self, uri: str, source_id: str | None = None) -> None:
        self._uri = str(uri)                  # raw (may carry credentials): only ever handed to the decoder
        self.id: str = redact(source_id if source_id is not None else self._uri)
        self.width: int | None = None
        self.height: int | None = None
        self.fps: float | None = None

    @property
    def uri(self) -> str:
        """The redacted URI (safe to print)."""
        return redact(self._uri)

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(kind=self.kind, uri=self.uri, width=self.width, height=self.height,
                          fps=self.fps, live=self.live)

    @abc.abstractmethod
    def open(self) -> None:
        """Connect/open the device, stream or file. Raise `SourceError` on failure. May be called again after
        `close()` (reconnect)."""

    @abc.abstractmethod
    def read(self) -> RawRead | None:
        """Block until the next frame. Return None at a clean end of stream (file EOF); raise `SourceError` on a
        failure (lost connection, read timeout). Paced sources sleep here to hold their frame rate."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything `open()` acquired. Must be safe to call twice or without a successful open()."""

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, id={self.id!r}, uri={self.uri!r}, live={self.live})"

    __str__ = __repr__
