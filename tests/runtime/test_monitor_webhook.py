"""Webhook output against a real HTTP server on 127.0.0.1: JSON body, HMAC signature, retries, bounded queue."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from fakewatch.runtime.webhook_output import SIGNATURE_HEADER, WebhookOutput, WebhookSettings, sign

from .http_receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def ev(i: int) -> dict:
    return {"type": "new", "before": {"id": str(i)}, "after": {"id": str(i), "camera": "cam", "score": 0.9}}


def test_events_are_posted_signed_with_headers(receiver):
    out = WebhookOutput(WebhookSettings(receiver.url, headers={"Authorization": "Bearer t"}, secret="k3y"))
    out.start({})
    out.event(ev(1))
    out.event(ev(2))
    assert receiver.wait_for(2)
    out.close()
    assert receiver.events() == [ev(1), ev(2)]
    r = receiver.requests[0]
    assert r["path"] == "/hook" and r["headers"]["Content-Type"] == "application/json"
    assert r["headers"]["Authorization"] == "Bearer t"
    expected = "sha256=" + hmac.new(b"k3y", r["body"], hashlib.sha256).hexdigest()
    assert r["headers"][SIGNATURE_HEADER] == expected == sign("k3y", r["body"])
    assert (out.delivered, out.dropped) == (2, 0)


def test_server_errors_are_retried_client_errors_are_not():
    rec = Receiver(statuses=[500, 503, 200, 404])
    waits: list[float] = []
    try:
        out = WebhookOutput(WebhookSettings(rec.url, retries=3, backoff_s=0.5), sleep=waits.append)
        out.start({})
        out.event(ev(1))               # 500, 503, then 200: delivered on the third attempt
        out.event(ev(2))               # 404: rejected, not retried, counted as dropped
        assert rec.wait_for(4)
        out.close()
    finally:
        rec.close()
    assert [r["status"] for r in rec.requests] == [500, 503, 200, 404]
    assert waits == [0.5, 1.0]          # exponential backoff between the attempts of the first event
    assert (out.delivered, out.dropped, out.attempts) == (1, 1, 4)
    assert json.loads(rec.requests[2]["body"]) == ev(1)


def test_an_unreachable_receiver_never_blocks_and_the_queue_is_bounded():
    from .mqtt_broker import free_port

    out = WebhookOutput(WebhookSettings(f"http://127.0.0.1:{free_port()}/x", retries=1, backoff_s=0.0,
                                        queue_size=5, timeout_s=2))
    out.start({})
    for i in range(200):
        out.event(ev(i))                # returns at once: the sender thread does the network I/O
    out.close()
    assert out.delivered == 0
    assert out.dropped == 200           # queue overflow + failed deliveries, all counted
    assert out.attempts <= 2 * 6        # at most queue_size (+1 in flight) events were tried, twice each


def test_settings_validation():
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookSettings("ftp://x/y")
    s = WebhookSettings("https://h/x?token=abc", secret="s")
    assert "abc" not in repr(s) and "signed=True" in repr(s)
