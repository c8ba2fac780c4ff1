"""A bounded window of batches whose inference is running, for runners with an asynchronous API (Triton).

With one batch at a time the watch loop waits for each round trip to a remote server before it can even close the
next batch. With a window of ``depth`` batches it closes and sends the next batch while the previous one is still on
the server, so transfer, server queue and compute overlap (what DeepStream's ``nvinferserver`` does with its
asynchronous mode). Batches complete strictly in the order they were sent, so a stream's frames are decided in
order; a batch without faces (nothing to infer) that closes while others are in flight waits its turn the same way.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
#: batches kept in flight by default for a runner with asynchronous inference (Triton): one computing on the server
#: while the next is sent, so transfer and (de)serialisation overlap the server's compute
ASYNC_IN_FLIGHT = 2


@dataclass
class Sent(Generic[T]):
    batch: T
    future: Future | None           # None: no rows, nothing was sent
    done_ts: float | None = None    # when the answer arrived (the ``inference`` stamp), set on the callback thread


class InFlight(Generic[T]):
    """At most ``depth`` sent batches, oldest first. ``on_done`` runs on the thread that completes a future."""

    def __init__(self, depth: int, clock: Callable[[], float], on_done: Callable[[], Any] | None = None) -> None:
        if depth < 1:
            raise ValueError(f"in-flight window must be >= 1 batch, got {depth}")
        self.depth = int(depth)
        self.clock = clock
        self.on_done = on_done
        self._q: deque[Sent[T]] = deque()
        self.max_seen = 0

    def __len__(self) -> int:
        return len(self._q)

    @property
    def full(self) -> bool:
        return len(self._q) >= self.depth

    def push(self, batch: T, future: Future | None) -> None:
        if self.full:
            raise RuntimeError(f"in-flight window full ({self.depth}); take the oldest batch first")
        sent = Sent(batch, future, None if future is not None else self.clock())
        self._q.append(sent)
        self.max_seen = max(self.max_seen, len(self._q))
        if future is not None:
            future.add_done_callback(lambda _f, s=sent: self._done(s))

    def _done(self, sent: Sent[T]) -> None:
        sent.done_ts = self.clock()
        if self.on_done is not None:
            self.on_done()

    def ready(self) -> Iterator[Sent[T]]:
        """The oldest batches that have their answer, in send order, removed from the window."""
        while self._q and (self._q[0].future is None or self._q[0].future.done()):
            yield self._q.popleft()

    def oldest(self) -> Sent[T]:
        """Remove and return the oldest batch, answered or not (the caller waits on its future)."""
        return self._q.popleft()
