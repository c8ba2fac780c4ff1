"""Stale streams: a live source whose newest frame is too old must not keep showing its last verdict.

A reader can keep its connection open while the camera sends nothing (a frozen encoder, a dead RTSP server before
the read timeout fires). :class:`StaleWatch` turns "newest frame older than ``stale_after``" into one ``stale``
transition per outage, and the pipeline reports it as source state ``stale`` + stream state ``UNKNOWN`` on every
output. The default limit is three frame intervals, at least 2 s (quiet cameras are not failures).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

MIN_STALE_S = 2.0
FRAME_INTERVALS = 3.0


def default_stale_after(fps: float | None) -> float:
    """3 x the frame interval, at least 2 s (unknown fps: 2 s)."""
    if not fps or fps <= 0:
        return MIN_STALE_S
    return max(MIN_STALE_S, FRAME_INTERVALS / fps)


@dataclass
class StaleWatch:
    """Tracks which streams are stale. ``limits`` overrides the limit (seconds) of single streams; ``default_s``
    overrides the automatic one for the others."""

    default_s: float | None = None
    limits: Mapping[str, float] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name, v in [("stale_after", self.default_s), *((f"{k}.stale_after", x) for k, x in self.limits.items())]:
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {v}")

    def limit(self, stream: str, fps: float | None) -> float:
        if stream in self.limits:
            return float(self.limits[stream])
        return float(self.default_s) if self.default_s is not None else default_stale_after(fps)

    def check(self, ages: Mapping[str, tuple[float | None, float | None]]) -> list[tuple[str, float, float]]:
        """``ages``: stream -> (age of its newest frame in s or None, nominal fps), for streams that should be
        delivering. Returns (stream, age, limit) for each stream that has just become stale."""
        out = []
        for sid, (age, fps) in ages.items():
            if age is None or sid in self.stale:
                continue
            lim = self.limit(sid, fps)
            if age > lim:
                self.stale.add(sid)
                out.append((sid, age, lim))
        return out

    def clear(self, stream: str) -> None:
        """The reader reported a state of its own (reconnecting, failed): that replaces "stale"."""
        self.stale.discard(stream)

    def fresh(self, stream: str) -> bool:
        """A new frame arrived; True when the stream was stale until now (it has recovered)."""
        if stream in self.stale:
            self.stale.discard(stream)
            return True
        return False
