"""OPENCV_FFMPEG_CAPTURE_OPTIONS handling.

OpenCV's FFmpeg backend takes demuxer options (RTSP transport, buffering) only from this process-wide environment
variable, read inside `VideoCapture.open`. Sources opened concurrently from several reader threads may want
different options, so opens with the *same* option string run in parallel and an open that needs a *different*
string waits until the in-flight ones are done (`ffmpeg_options(...)` context manager).
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

# What the user had set before we touched it: their keys win over ours (explicit intent).
_USER_VALUE = os.environ.get(ENV, "")
_cond = threading.Condition()
_current: str | None = None
_inflight = 0


def parse(value: str) -> dict[str, str]:
    """"k1;v1|k2;v2" -> {"k1": "v1", "k2": "v2"} (OpenCV's format)."""
    out: dict[str, str] = {}
    for part in value.split("|"):
        if not part.strip():
            continue
        k, _, v = part.partition(";")
        out[k.strip()] = v.strip()
    return out


def format_options(opts: dict[str, str]) -> str:
    return "|".join(f"{k};{v}" for k, v in opts.items())


def build(ours: dict[str, str]) -> str:
    merged = dict(ours)
    merged.update(parse(_USER_VALUE))
    return format_options(merged)


def _set_env(value: str) -> None:
    if value:
        os.environ[ENV] = value
    else:
        os.environ.pop(ENV, None)


@contextlib.contextmanager
def ffmpeg_options(value: str) -> Iterator[None]:
    """Hold OPENCV_FFMPEG_CAPTURE_OPTIONS == value for the duration of an open, then put the user's value back.

    The variable is process-wide and OpenCV reads it for *every* FFmpeg open, files included: left at the network
    value ("fflags;nobuffer|..."), later file opens lose their last frame or decode nothing at all.
    """
    global _current, _inflight
    with _cond:
        _cond.wait_for(lambda: _inflight == 0 or _current == value)
        if _current != value:
            _set_env(value)
            _current = value
        _inflight += 1
    try:
        yield
    finally:
        with _cond:
            _inflight -= 1
            if _inflight == 0:
                _set_env(_USER_VALUE)
                _current = _USER_VALUE
            _cond.notify_all()


def file_options() -> contextlib.AbstractContextManager[None]:
    """For opening files: the user's own options only (waits while a network open holds other options)."""
    return ffmpeg_options(_USER_VALUE)
