"""One reader thread per source: open, read, keep only the newest frame, reconnect live sources.

The reader never queues: each new frame replaces the one in its slot, and a replaced frame that nobody took is
counted as dropped. So a slow consumer sees fresh frames (bounded age) instead of a growing backlog. All slots are
guarded by one Condition shared with the SourceGroup, so a consumer can wait for "any source has a frame".
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque

import numpy as np
from collections.abc import Callable

from fakewatch.core.redact import redact
from fakewatch.streams.backoff import Backoff
from fakewatch.streams.frame import Frame
from fakewatch.streams.source import RawRead, Source, SourceError
from fakewatch.streams.working_size import WorkingSize

log = logging.getLogger("fakewatch.streams")

FPS_WINDOW_S = 2.0
ENDED_STATES = ("failed", "eof", "stopped")


class Reader:
    def __init__(self, source: Source, cond: threading.Condition, stop: threading.Event,
                 emit: Callable[[str, str, str], None], backoff: Backoff, rng: random.Random | None = None,
                 working_size: WorkingSize | None = None) -> None:
        self.source = source
        self.working_size = working_size
        self.id = source.id
        self._cond = cond
        self._stop = stop
        self._emit_cb = emit
        self.backoff = backoff
        self._rng = rng or random.Random()
        self.lossless = bool(getattr(source, "lossless", False)) and not source.live
        # guarded by _cond
        self.slot: Frame | None = None
        self.state = "idle"
        self.read_count = 0
        self.delivered = 0
        self.dropped = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.last_capture_ts: float | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.finished = False
        self._permanent = False     # the last open failure was one retrying cannot fix
        self._times: deque[float] = deque(maxlen=512)
        self._seq = 0
        self.thread = threading.Thread(target=self._main, name=f"streams-reader[{self.id}]", daemon=True)

    # -- thread body -----------------------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._run()
        except Exception as e:  # a bug in a source must end this reader, not the process
            self.last_error = redact(f"{type(e).__name__}: {e}")
            log.exception("reader %s crashed", self.id)
            self._emit("failed", f"reader crashed: {self.last_error}")
        finally:
            self._close()
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def _run(self) -> None:
        src, live = self.source, self.source.live
        attempt = 0             # consecutive failed attempts since the last frame
        ever_live = False
        self._emit("connecting", f"opening {src.kind} {src.uri}")
        while not self._stop.is_set():
            error = self._open()
            if error is None:
                error = self._read_loop(ever_live)
                if error == "":          # clean EOF of a non-live source
                    self._emit("eof", f"end of {src.uri} after {self._seq} frames")
                    return
                if self._got_frame:
                    ever_live, attempt = True, 0
            self._close()                       # also after a failed open: release what it half-acquired
            if self._stop.is_set():
                break
            self.last_error = error
            if not live:
                self._emit("failed", error)
                return
            if self._permanent and not ever_live:     # wrong password / not a stream: say so once, do not spin
                self._emit("failed", f"{error} (not retried: the server refused this source)")
                return
            attempt += 1
            if self.backoff.exhausted(attempt):
                self._emit("failed", f"{error} (gave up after {attempt - 1} retries)")
                return
            delay = self.backoff.delay(attempt, self._rng)
            self._emit("reconnecting", f"{error} (retry {attempt} in {delay:.1f} s)")
            if self._stop.wait(delay):
                break
        self._emit("stopped", "stopped")

    def _close(self) -> None:
        try:
            self.source.close()
        except Exception as e:
            log.warning("closing %s: %s", self.id, redact(e))

    def _open(self) -> str | None:
        self._permanent = False
        try:
            self.source.open()
            return None
        except SourceError as e:
            self._permanent = e.permanent
            return str(e)
        except Exception as e:
            return redact(f"cannot open {self.source.uri}: {type(e).__name__}: {e}")

    def _read_loop(self, reconnected: bool) -> str | None:
        """Read until stop (None), clean EOF (""), or failure (the message)."""
        src = self.source
        self._got_frame = False
        while not self._stop.is_set():
            try:
                raw = src.read()
            except SourceError as e:
                return str(e)
            except Exception as e:
                return redact(f"{src.uri}: read failed: {type(e).__name__}: {e}")
            if raw is None:
                return "" if not src.live else f"{src.uri}: stream ended"
            try:
                self._publish(raw, reconnected)
            except ValueError as e:      # bad image from the source
                return redact(f"{src.uri}: {e}")
        return None

    def _publish(self, raw: RawRead, reconnected: bool) -> None:
        now = time.monotonic()
        image, scale = raw.image, 1
        if self.working_size is not None and isinstance(image, np.ndarray) and image.ndim == 3:
            image, scale = self.working_size.apply(image)    # in this thread: cv2 releases the GIL
        frame = Frame(source_id=self.id, seq=self._seq, capture_ts=now, image=image, source_ts=raw.source_ts,
                      truth=raw.truth, scale=scale)
        self._seq += 1
        h, w = raw.image.shape[0], raw.image.shape[1]     # the source's size, not the working copy's
        first = not self._got_frame
        self._got_frame = True
        if first:
            msg = f"{w}x{h}" + (f" @ {self.source.fps:g} fps" if self.source.fps else "")
            if scale > 1:
                msg += f" (scaled to {frame.width}x{frame.height} in the reader)"
            if self.width is not None and (w, h) != (self.width, self.height):
                msg += f" (frame size changed from {self.width}x{self.height})"
            if reconnected:
                with self._cond:
                    self.reconnects += 1
        with self._cond:
            if self.lossless:
                self._cond.wait_for(lambda: self.slot is None or self._stop.is_set())
            if self.slot is not None:
                self.dropped += 1
            self.slot = frame
            self.read_count += 1
            self.last_capture_ts = now
            self.width, self.height = w, h
            self._times.append(now)
            self._cond.notify_all()
        if first:
            self._emit("live", msg)

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _emit(self, state: str, message: str) -> None:
        with self._cond:
            self.state = state
        self._emit_cb(self.id, state, redact(message))

    def take(self) -> Frame | None:
        """Caller holds the condition."""
        f, self.slot = self.slot, None
        if f is not None:
            self.delivered += 1
        return f

    def fps(self, now: float) -> float:
        """Frames read per second over the last FPS_WINDOW_S. Caller holds the condition."""
        ts = [t for t in self._times if now - t <= FPS_WINDOW_S]
        if len(ts) < 2 or ts[-1] <= ts[0]:
            return 0.0
        return (len(ts) - 1) / (ts[-1] - ts[0])

    @property
    def ended(self) -> bool:
        return self.finished or self.state in ENDED_STATES
