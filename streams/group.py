"""SourceGroup: many sources read at once, one stop signal, one place to wait for frames, events and stats."""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fakewatch.core.redact import redact
from fakewatch.streams.backoff import Backoff
from fakewatch.streams.frame import Frame
from fakewatch.streams.reader import Reader
from fakewatch.streams.source import Source, SourceInfo
from fakewatch.streams.working_size import WorkingSize

log = logging.getLogger("fakewatch.streams")

STATES = ("connecting", "live", "reconnecting", "failed", "eof", "stopped")
_LEVEL = {"reconnecting": logging.WARNING, "failed": logging.ERROR}


@dataclass(frozen=True)
class SourceEvent:
    source_id: str     # redacted
    state: str         # one of STATES
    message: str       # redacted
    ts: float          # time.monotonic()

    def __str__(self) -> str:
        return f"[{self.source_id}] {self.state}: {self.message}"


@dataclass
class ReaderStats:
    state: str                 # current state (STATES, or "idle" before start)
    delivered: int             # frames handed out by wait_frames
    dropped: int               # frames replaced before anyone took them
    reconnects: int            # successful reconnections (frames flowed again after a loss)
    fps: float                 # frames read per second over the last 2 s
    last_error: str | None     # redacted
    read: int = 0              # frames read from the source (= delivered + dropped + pending)
    kind: str = ""
    width: int | None = None   # size of the latest frame
    height: int | None = None
    nominal_fps: float | None = None
    last_frame_age_s: float | None = None   # now - capture time of the newest frame read


class SourceGroup:
    """Read `sources` concurrently (one thread each); newest frame per source wins.

    `on_event(SourceEvent)` is called from reader threads (keep it short; exceptions are logged and ignored); events
    are also kept in a bounded buffer drained by `events()`. `read_timeout_s` becomes the read timeout of every
    source that has a `read_timeout_s` left at None. `backoff` sets the reconnect schedule of live sources.
    """

    def __init__(self, sources: Iterable[Source], on_event: Callable[[SourceEvent], None] | None = None,
                 read_timeout_s: float = 5.0, backoff: Backoff | None = None, max_events: int = 1000,
                 seed: int | None = None, working_size: WorkingSize | None = None,
                 decode_threads: int | None = None) -> None:
        self.sources = list(sources)
        if not self.sources:
            raise ValueError("SourceGroup needs at least one source")
        self.on_event = on_event
        self.read_timeout_s = float(read_timeout_s)
        self.backoff = backoff or Backoff()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._events: deque[SourceEvent] = deque(maxlen=max_events)
        self._events_lock = threading.Lock()
        self._started = False
        rng = random.Random(seed)
        seen: dict[str, int] = {}
        for src in self.sources:           # ids key stats and frames: make duplicates unique
            n = seen.get(src.id, 0) + 1
            seen[src.id] = n
            if n > 1:
                src.id = f"{src.id}#{n}"
        # a source's own `backoff` attribute (a camera's max_retries from a config file) wins over the group's
        self._readers = [Reader(s, self._cond, self._stop, self._emit, getattr(s, "backoff", None) or self.backoff,
                                random.Random(rng.random()), working_size=working_size)
                         for s in self.sources]
        if decode_threads is not None:
            if decode_threads < 0:
                raise ValueError(f"decode_threads (--decode-threads) must be >= 0 (0 = OpenCV's default), got "
                                 f"{decode_threads}")
            for src in self.sources:
                src.decode_threads = decode_threads

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> "SourceGroup":
        if self._stop.is_set():
            raise RuntimeError("SourceGroup was stopped; build a new one")
        if self._started:
            return self
        self._started = True
        for r in self._readers:
            if getattr(r.source, "read_timeout_s", False) is None:
                r.source.read_timeout_s = self.read_timeout_s   # type: ignore[attr-defined]
            r.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Signal every reader and join them all within `timeout` seconds in total. Returns True when all ended;
        a reader stuck in a blocking open/read past the deadline is left (daemon thread) and logged."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()          # wake lossless readers waiting for the consumer
        deadline = time.monotonic() + timeout
        stuck = []
        for r in self._readers:
            if r.thread.is_alive():
                r.thread.join(max(0.0, deadline - time.monotonic()))
            if r.thread.is_alive():
                stuck.append(r.id)
        if stuck:
            log.warning("streams: %d reader(s) still blocked in their source after %.1f s: %s", len(stuck), timeout,
                        ", ".join(stuck))
        return not stuck

    def __enter__(self) -> "SourceGroup":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- frames ----------------------------------------------------------------------------------------------------
    def wait_frames(self, timeout: float) -> list[Frame]:
        """The newest untaken frame of every source that has one, waiting up to `timeout` s for at least one.
        Returns [] on timeout or once every source has ended. A frame is never returned twice."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                frames = [f for r in self._readers if (f := r.take()) is not None]
                if frames:
                    self._cond.notify_all()      # lossless readers wait for their slot to empty
                    return frames
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set() or all(r.finished for r in self._readers):
                    return []
                self._cond.wait(remaining)

    @property
    def all_finished(self) -> bool:
        """Every reader has ended (eof/failed/stopped) and no frame is left to take."""
        with self._cond:
            return all(r.finished and r.slot is None for r in self._readers)

    # -- health ----------------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, ReaderStats]:
        now = time.monotonic()
        with self._cond:
            return {r.id: ReaderStats(state=r.state, delivered=r.delivered, dropped=r.dropped,
                                      reconnects=r.reconnects, fps=round(r.fps(now), 2), last_error=r.last_error,
                                      read=r.read_count, kind=r.source.kind, width=r.width, height=r.height,
                                      nominal_fps=r.source.fps,
                                      last_frame_age_s=None if r.last_capture_ts is None else now - r.last_capture_ts)
                    for r in self._readers}

    def info(self) -> dict[str, SourceInfo]:
        return {r.id: r.source.info for r in self._readers}

    def events(self) -> list[SourceEvent]:
        """Drain the buffered events (oldest first; the buffer keeps the newest `max_events`)."""
        with self._events_lock:
            out = list(self._events)
            self._events.clear()
        return out

    def _emit(self, source_id: str, state: str, message: str) -> None:
        ev = SourceEvent(redact(source_id), state, redact(message), time.monotonic())
        with self._events_lock:
            self._events.append(ev)
        log.log(_LEVEL.get(state, logging.INFO), "%s", ev)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:
                log.exception("streams: on_event callback raised (ignored)")

    def __repr__(self) -> str:
        return f"SourceGroup({', '.join(r.id for r in self._readers)})"
