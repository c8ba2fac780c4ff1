"""Server-Sent Events fan-out for the dashboard (runtime/http_server.py's ``/api/stream``): bounded per client."""
from __future__ import annotations

import json
import queue
import threading
from typing import Any, Mapping


class Broadcaster:
    """Server-Sent Events fan-out: one bounded queue per client; a client that falls ``sse_queue`` messages behind
    is disconnected (its browser reconnects and re-reads the state) instead of growing memory."""

    def __init__(self, max_clients: int, queue_size: int) -> None:
        self.max_clients, self.queue_size = max_clients, queue_size
        self._clients: list[queue.Queue] = []
        self._lock = threading.Lock()
        self.cut = 0

    def subscribe(self) -> queue.Queue | None:
        with self._lock:
            if len(self._clients) >= self.max_clients:
                return None
            q: queue.Queue = queue.Queue(maxsize=self.queue_size)
            self._clients.append(q)
            return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            if q in self._clients:
                self._clients.remove(q)

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def publish(self, kind: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            clients = list(self._clients)
        if not clients:
            return
        msg = f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
        for q in clients:
            try:
                q.put_nowait(msg)
            except queue.Full:
                self.cut += 1
                self.unsubscribe(q)
                _put_end(q)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for q in clients:
            _put_end(q)


def _put_end(q: queue.Queue) -> None:
    """Wake the client's handler with the end marker (drop a message to make room if needed)."""
    try:
        q.put_nowait(None)
    except queue.Full:
        try:
            q.get_nowait()
        except queue.Empty:
            pass
        q.put_nowait(None)
