"""fakewatch streams: webcam / RTSP / HTTP / file / demo sources read live, newest frame wins.

    from fakewatch.streams import open_source, SourceGroup
    group = SourceGroup([open_source("rtsp://user:pw@cam/stream"), open_source("clip.mp4", pace=True)])
    group.start()
    frames = group.wait_frames(0.1)

Importing this package does not import torch (nor cv2: heavy modules load on first use).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fakewatch.core.redact import redact
from fakewatch.streams.frame import Frame
from fakewatch.streams.source import RawRead, Source, SourceError, SourceInfo

# A library logs, the application decides where it goes (no "lastResort" stderr output for warnings).
logging.getLogger("fakewatch.streams").addHandler(logging.NullHandler())

if TYPE_CHECKING:  # pragma: no cover
    from fakewatch.streams.group import ReaderStats, SourceEvent, SourceGroup
    from fakewatch.streams.registry import open_source

__all__ = ["open_source", "SourceGroup", "SourceEvent", "ReaderStats", "SourceError", "SourceInfo", "Source",
           "RawRead", "Frame", "redact"]

# name -> module that defines it; loaded on first attribute access (keeps `import fakewatch.streams` light).
_LAZY = {
    "open_source": "fakewatch.streams.registry",
    "SourceGroup": "fakewatch.streams.group",
    "SourceEvent": "fakewatch.streams.group",
    "ReaderStats": "fakewatch.streams.group",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'streams' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
