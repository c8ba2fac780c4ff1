"""RequestStream's bookkeeping (answers matched by request id, one error failing the stream) with a stand-in
client; the real stream against a real server is in test_triton_server.py."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from fakewatch.runtime.backends.triton_stream import RequestStream, StreamClosed


class FakeStreamClient:
    """The three tritonclient.grpc calls RequestStream makes; the test plays the server's part."""

    def __init__(self) -> None:
        self.callback = None
        self.sent: list[str] = []
        self.stopped = False

    def start_stream(self, callback) -> None:
        self.callback = callback

    def async_stream_infer(self, model, inputs, outputs=None, request_id="") -> None:
        self.sent.append(request_id)

    def stop_stream(self, cancel_requests=False) -> None:
        self.stopped = cancel_requests

    def answer(self, request_id: str) -> None:
        self.callback(SimpleNamespace(get_response=lambda: SimpleNamespace(id=request_id)), None)


def test_answers_reach_their_own_request_in_any_order():
    client, got = FakeStreamClient(), []
    stream = RequestStream(client, "m")
    for tag in "abc":
        stream.send([], [], lambda result, error, tag=tag: got.append((tag, result.get_response().id, error)))
    assert client.sent == ["1", "2", "3"] and stream.in_flight == 3
    for rid in ("3", "1", "2"):
        client.answer(rid)
    assert got == [("c", "3", None), ("a", "1", None), ("b", "2", None)] and stream.in_flight == 0


def test_an_error_fails_every_request_on_the_stream_and_the_next_send_says_why():
    client, got = FakeStreamClient(), []
    stream = RequestStream(client, "m")
    for _ in range(2):
        stream.send([], [], lambda result, error: got.append((result, error)))
    cause = RuntimeError("StatusCode.UNAVAILABLE: connection refused")
    client.callback(None, cause)                    # a stream error carries no request id
    assert got == [(None, cause), (None, cause)] and stream.broken and stream.in_flight == 0
    with pytest.raises(RuntimeError, match="UNAVAILABLE"):     # the cause, not a bare "closed"
        stream.send([], [], lambda result, error: None)
    assert client.sent == ["1", "2"]


def test_close_cancels_and_fails_what_is_left():
    client, got = FakeStreamClient(), []
    stream = RequestStream(client, "m")
    stream.send([], [], lambda result, error: got.append(error))
    stream.close()
    assert client.stopped and isinstance(got[0], StreamClosed) and stream.broken
    with pytest.raises(StreamClosed):
        stream.send([], [], lambda result, error: None)
