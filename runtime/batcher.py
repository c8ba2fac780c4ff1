"""Cross-stream batching, the nvstreammux way: push a batch when it is full or when ``max_wait`` has passed since
its *first* item arrived (DeepStream's ``batched-push-timeout``), whichever comes first.

Items are frames; each brings ``n_rows`` model inputs (1 for a full-frame model, 0..max_faces for a face model).
A frame's rows are never split across batches. Rows are written straight into the pending batch's buffer by the
caller's ``fill`` callback (the preprocessing step), so assembling a batch copies nothing.

Frames with no rows (no face) ride along with the pending batch so per-stream order is kept; if nothing is
pending they come out at once as a batch with zero rows (no inference needed).

A batch is also "full" when it holds ``target_items`` frames (the pipeline sets it to the number of live sources),
so a dead or slow camera does not make every batch wait out the timeout. ``max_wait`` 0 means "batch only what is
already there": the pipeline polls right after taking the frames that were ready together.

Defaults (docs/runtime.md, "Choosing --batch and --max-wait-ms", has the measurements): ``max_batch`` = the number
of sources (NVIDIA's advice for nvstreammux); ``max_wait`` = :func:`default_max_wait_ms`: one frame interval of the
fastest source (NVIDIA's advice, at most 40 ms) when inference runs on a GPU, where batching pays, and 0 on a CPU,
where we measured no per-image gain from batching, so waiting would be pure latency.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

import numpy as np

T = TypeVar("T")

#: ceiling of the GPU default batched-push-timeout (one frame at 25 fps)
GPU_MAX_WAIT_CAP_MS = 40.0
#: largest default batch when --batch is "auto" (= number of sources)
AUTO_BATCH_CAP = 16


def default_max_wait_ms(on_gpu: bool, fps: list[float | None]) -> float:
    """0 on CPU (batching buys nothing there, measured); on GPU one frame interval of the fastest source."""
    if not on_gpu:
        return 0.0
    known = [f for f in fps if f and f > 0]
    return min(GPU_MAX_WAIT_CAP_MS, 1e3 / max(known)) if known else GPU_MAX_WAIT_CAP_MS


@dataclass
class Batch(Generic[T]):
    items: list[T]
    spans: list[tuple[int, int]]       # rows [start, stop) of each item in ``inputs``
    inputs: np.ndarray                 # (rows, *row_shape) float32, valid until the batch is dropped
    opened_ts: float
    closed_ts: float
    reason: str                        # "full" | "timeout" | "flush" | "no-input"

    @property
    def rows(self) -> int:
        return int(self.inputs.shape[0])

    def outputs_of(self, outputs: np.ndarray, i: int) -> np.ndarray:
        start, stop = self.spans[i]
        return outputs[start:stop]


@dataclass
class _Pending:
    buf: np.ndarray
    opened_ts: float
    items: list = field(default_factory=list)
    spans: list = field(default_factory=list)
    rows: int = 0


class Batcher(Generic[T]):
    """Collect items into batches of at most ``max_batch`` rows, waiting at most ``max_wait_s`` after the first."""

    def __init__(self, max_batch: int, max_wait_s: float, row_shape: tuple[int, ...],
                 clock: Callable[[], float] = time.monotonic, dtype=np.float32) -> None:
        if max_batch < 1:
            raise ValueError(f"max batch must be >= 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max wait must be >= 0 s, got {max_wait_s}")
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.row_shape = tuple(row_shape)
        self.clock = clock
        self.dtype = dtype
        #: close a batch once it holds this many items (frames), e.g. one per live source; None = rows only
        self.target_items: int | None = None
        self._p: _Pending | None = None

    # ------------------------------------------------------------------ feeding
    def add(self, item: T, n_rows: int, fill: Callable[[np.ndarray], object] | None = None,
            now: float | None = None) -> list[Batch[T]]:
        """Add one item; ``fill(view)`` writes its ``n_rows`` inputs. Returns the batches that became ready."""
        if not 0 <= n_rows <= self.max_batch:
            raise ValueError(f"an item brings {n_rows} rows but the batch holds at most {self.max_batch}; "
                             f"raise --batch or lower --max-faces")
        if n_rows and fill is None:
            raise ValueError("add: fill is required when n_rows > 0")
        explicit_now = now
        now = self.clock() if now is None else now
        ready: list[Batch[T]] = []
        if self._p is not None and self._p.rows + n_rows > self.max_batch:
            ready.append(self._close("full", now))
        if self._p is None:
            self._p = _Pending(np.empty((self.max_batch, *self.row_shape), self.dtype), now)
        p = self._p
        if n_rows:
            fill(p.buf[p.rows:p.rows + n_rows])
            if explicit_now is None:
                now = self.clock()   # the batch closes after this item's rows are written, not before
        p.items.append(item)
        p.spans.append((p.rows, p.rows + n_rows))
        p.rows += n_rows
        if p.rows == self.max_batch:
            ready.append(self._close("full", now))
        elif p.rows == 0:
            ready.append(self._close("no-input", now))
        elif self.target_items is not None and len(p.items) >= self.target_items:
            ready.append(self._close("full", now))     # one frame from every live source: nvstreammux's "full"
        return ready

    def poll(self, now: float | None = None) -> Batch[T] | None:
        """The pending batch if its wait has expired, else None."""
        now = self.clock() if now is None else now
        if self._p is not None and now - self._p.opened_ts >= self.max_wait_s:
            return self._close("timeout", now)
        return None

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds until the pending batch times out (>= 0), or None when nothing is pending."""
        if self._p is None:
            return None
        now = self.clock() if now is None else now
        return max(0.0, self._p.opened_ts + self.max_wait_s - now)

    def flush(self, now: float | None = None) -> Batch[T] | None:
        """Close the pending batch whatever its size (end of run)."""
        if self._p is None:
            return None
        return self._close("flush", self.clock() if now is None else now)

    @property
    def pending_rows(self) -> int:
        return 0 if self._p is None else self._p.rows

    # ------------------------------------------------------------------ internals
    def _close(self, reason: str, now: float) -> Batch[T]:
        p, self._p = self._p, None
        assert p is not None
        return Batch(p.items, p.spans, p.buf[:p.rows], p.opened_ts, now, reason)
