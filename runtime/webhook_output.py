"""Webhook output: POST every FAKE episode event (the same JSON as MQTT ``<prefix>/events``) to a URL.

One background thread per webhook, a bounded queue (a full queue drops the event and counts it), a timeout per
request and retries with exponential backoff on network errors and 5xx/429 answers (4xx other than 429 is not
retried: the receiver rejected it). With a ``secret``, the body is signed like GitHub's webhooks:
``X-Fakewatch-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``, and ``X-Fakewatch-Timestamp`` is sent too.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from fakewatch.core.redact import redact
from fakewatch.runtime.monitor import Output

log = logging.getLogger("fakewatch.runtime.webhook")

SIGNATURE_HEADER = "X-Fakewatch-Signature-256"
USER_AGENT = "fakewatch-webhook/1"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body`` (receivers recompute it and compare with hmac.compare_digest)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = None
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    queue_size: int = 100

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--webhook {redact(self.url)}: expected an http:// or https:// URL")
        if self.timeout_s <= 0 or self.retries < 0 or self.backoff_s < 0 or self.queue_size < 1:
            raise ValueError(f"webhook {redact(self.url)}: need timeout > 0, retries >= 0, backoff >= 0, "
                             f"queue_size >= 1")

    def __repr__(self) -> str:
        return f"WebhookSettings({redact(self.url)}, retries={self.retries}, signed={self.secret is not None})"

    __str__ = __repr__


class WebhookOutput(Output):
    name = "webhook"

    def __init__(self, settings: WebhookSettings, sleep: Any = None) -> None:
        self.s = settings
        self.name = f"webhook {redact(settings.url)}"
        self.dropped = 0          # queue full, or every attempt failed
        self.delivered = 0
        self.attempts = 0
        self._q: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait        # waits end early on close
        self._thread = threading.Thread(target=self._run, name="fakewatch-webhook", daemon=True)

    def start(self, info: Mapping[str, Any]) -> None:
        self._thread.start()

    def event(self, event: Mapping[str, Any]) -> None:
        try:
            self._q.put_nowait(json.dumps(event, separators=(",", ":"), allow_nan=False).encode())
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while not (self._stop.is_set() and self._q.empty()):
            try:
                body = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._deliver(body):
                self.delivered += 1
            else:
                self.dropped += 1

    def _deliver(self, body: bytes) -> bool:
        s = self.s
        for attempt in range(s.retries + 1):
            if attempt:
                self._sleep(s.backoff_s * 2 ** (attempt - 1))
            self.attempts += 1
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **s.headers}
            if s.secret:
                headers["X-Fakewatch-Timestamp"] = str(int(time.time()))
                headers[SIGNATURE_HEADER] = sign(s.secret, body)
            req = urllib.request.Request(s.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=s.timeout_s) as resp:
                    resp.read(1024)
                return True
            except urllib.error.HTTPError as e:
                if e.code < 500 and e.code != 429:
                    log.warning("webhook %s rejected an event: HTTP %d (not retried)", redact(s.url), e.code)
                    return False
                why = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                why = redact(str(getattr(e, "reason", e)))
            log.warning("webhook %s: %s (attempt %d of %d)", redact(s.url), why, attempt + 1, s.retries + 1)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued within ``timeout`` s (retries cut short), then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
