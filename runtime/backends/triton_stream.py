"""All of one runner's requests on one gRPC bidirectional stream (Triton's ``ModelStreamInfer``).

A unary gRPC call costs the Python client a call object, a completion-queue poll and, whenever no other call is in
flight, a new channel-spin thread; the server builds a call state machine for each. On a stream the requests are
messages of one long-lived call: less CPU on both sides, which on a small CPU shared with the model is throughput
(``benchmarks/results/triton_bench``). perf_analyzer offers the same as ``--streaming``.

Answers come back in completion order and are matched to their request by id. An error on a stream carries no
request id (Triton sends it as a message without one, or the call itself fails), so it fails every request still
on that stream; the runner then opens a new stream on its next request.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

#: ``done(result, error)``: exactly one of them is None
Done = Callable[[Any, "BaseException | None"], None]


class StreamClosed(RuntimeError):
    """The stream failed or was closed before this request was answered."""


class RequestStream:
    """Requests of one runner on one open stream of ``client`` (a tritonclient.grpc InferenceServerClient)."""

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model
        self.error: BaseException | None = None     # what broke or closed it, reported to requests sent after that
        self._pending: dict[str, Done] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        client.start_stream(self._on_response)

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def send(self, inputs: list, outputs: list, done: Done) -> None:
        """Queue one request; ``done`` runs on the stream's reader thread when its answer (or an error) arrives.
        Raises when the stream is already broken (the caller opens a new one)."""
        rid = str(next(self._ids))
        with self._lock:
            if self.error is not None:
                raise self.error
            self._pending[rid] = done
        try:
            self.client.async_stream_infer(self.model, inputs, outputs=outputs, request_id=rid)
        except Exception as exc:
            with self._lock:
                self._pending.pop(rid, None)
                self.error = self.error or exc
            raise

    def _on_response(self, result: Any, error: BaseException | None) -> None:
        if error is None:
            with self._lock:
                done = self._pending.pop(result.get_response().id, None)
            if done is not None:
                done(result, None)
            return
        self._fail_all(error)

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            self.error = self.error or error
            pending, self._pending = self._pending, {}
        for done in pending.values():
            done(None, error)

    def close(self) -> None:
        """Cancel the stream (never from its own reader thread: it joins that thread); requests still on it fail."""
        closed = StreamClosed(f"the stream to {self.model!r} was closed")
        with self._lock:
            self.error = self.error or closed
        inner = getattr(self.client, "_stream", None)
        try:
            self.client.stop_stream(cancel_requests=True)
        except Exception:    # a channel already gone: nothing left to cancel
            pass
        # tritonclient does not end a cancelled stream's request iterator: gRPC's thread that feeds the stream
        # can wait on its queue forever (threads piled up over failed restarts, measured); None ends it
        queue = getattr(inner, "_request_queue", None)
        if queue is not None:
            queue.put(None)
        self._fail_all(closed)
