"""MQTT output (paho-mqtt), with Frigate's topic layout under ``<prefix>`` (default ``fakewatch``):

================================  ========================================================  =========
topic                             payload                                                   retained
================================  ========================================================  =========
``<prefix>/available``            ``online`` at start; ``offline`` on clean stop and as the    yes
                                  broker's last will
``<prefix>/<camera>/state``       ``REAL`` / ``FAKE`` / ``UNKNOWN`` (on change)                 yes
``<prefix>/<camera>/status``      ``connecting`` / ``live`` / ``reconnecting`` / ``stale`` /   yes
                                  ``failed`` / ``ended``
``<prefix>/events``               ``{"type": "new"|"update"|"end", "before", "after"}`` JSON     no
``<prefix>/stats``                service + per-camera stats JSON, every ``stats_interval``     no
================================  ========================================================  =========

The pipeline never waits for the broker: messages go into a bounded outbox drained by one thread (a full outbox
drops the message and counts it in ``dropped``); paho reconnects with backoff and keeps at most ``outbox`` QoS 1
messages while the broker is away. After every (re)connect the retained topics are published again, so a broker
that restarted without persistence still shows the current state.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import threading
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from fakewatch.core.redact import redact
from fakewatch.runtime.monitor import Output

log = logging.getLogger("fakewatch.runtime.mqtt")

DEFAULT_PREFIX = "fakewatch"
SCHEMES = {"mqtt": 1883, "mqtts": 8883}


def topic_name(camera: str) -> str:
    """A camera id as one topic level (no '/', '+', '#'; ids of unnamed sources are URLs or paths)."""
    return re.sub(r"[/+#\s]+", "_", camera).strip("_") or "camera"


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int = 1883
    user: str | None = None
    password: str | None = None
    prefix: str = DEFAULT_PREFIX
    client_id: str | None = None
    tls: bool = False
    qos: int = 1
    keepalive_s: int = 30
    outbox: int = 1000
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    discovery_prefix: str | None = None     # e.g. "homeassistant": announce one binary_sensor per camera

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("mqtt: host is empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"mqtt: port must be 1..65535, got {self.port}")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"mqtt: qos must be 0, 1 or 2, got {self.qos}")
        if not self.prefix or any(c in self.prefix for c in "+#") or self.prefix.startswith("/") \
                or self.prefix.endswith("/"):
            raise ValueError(f"mqtt: topic prefix {self.prefix!r} must be non-empty, without '+', '#' or a "
                             f"leading/trailing '/'")
        if self.outbox < 1 or self.reconnect_min_s <= 0 or self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("mqtt: outbox must be >= 1 and 0 < reconnect_min_s <= reconnect_max_s")

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> "MqttSettings":
        """``mqtt://[user:pass@]host[:port][/prefix]`` (``mqtts://`` = TLS, port 8883)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise ValueError(f"--mqtt {redact(url)}: {e}; expected mqtt://[user:pass@]host[:port][/prefix]") from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(f"--mqtt {redact(url)}: expected mqtt://[user:pass@]host[:port][/prefix] "
                             f"(or mqtts:// for TLS)")
        prefix = parts.path.strip("/") or kw.pop("prefix", None) or DEFAULT_PREFIX   # the URL's path wins
        kw.pop("prefix", None)
        user, password = kw.pop("user", None), kw.pop("password", None)
        return cls(host=parts.hostname, port=port or SCHEMES[parts.scheme],
                   user=unquote(parts.username) if parts.username else user,
                   password=unquote(parts.password) if parts.password is not None else password,
                   prefix=prefix, tls=parts.scheme == "mqtts", **{k: v for k, v in kw.items() if v is not None})

    def __repr__(self) -> str:     # never print the password
        return f"MqttSettings({self.host}:{self.port}, prefix={self.prefix!r}, user={self.user!r}, tls={self.tls})"

    __str__ = __repr__


def discovery_config(s: MqttSettings, cam: str, model: str = "") -> tuple[str, dict[str, Any]]:
    """(topic, payload) announcing ``cam`` to Home Assistant as a binary_sensor (device_class problem): on = FAKE,
    off = REAL, unknown for UNKNOWN; unavailable while fakewatch is offline or the camera is not ``live``."""
    node = re.sub(r"[^A-Za-z0-9_-]", "_", f"fakewatch_{s.prefix}_{cam}")
    base = f"{s.prefix}/{cam}"
    return (f"{s.discovery_prefix}/binary_sensor/{node}/deepfake/config", {
        "name": "Deepfake", "unique_id": f"{node}_deepfake", "object_id": f"{node}_deepfake",
        "state_topic": f"{base}/state", "payload_on": "FAKE", "payload_off": "REAL",
        "value_template": "{{ value if value in ('FAKE', 'REAL') else 'None' }}",
        "device_class": "problem", "qos": 1,
        "availability_mode": "all",
        "availability": [{"topic": f"{s.prefix}/available"},
                         {"topic": f"{base}/status",
                          "value_template": "{{ 'online' if value == 'live' else 'offline' }}"}],
        "device": {"identifiers": [node], "name": f"fakewatch {cam}", "manufacturer": "fakewatch",
                   "model": model or "deepfake detector"},
    })


class MqttOutput(Output):
    name = "mqtt"

    def __init__(self, settings: MqttSettings) -> None:
        self.s = settings
        self.dropped = 0
        self.published = 0
        self.connected = threading.Event()
        self._retained: dict[str, str] = {}
        self._retained_lock = threading.Lock()
        self._resync = threading.Event()
        self._session = 0                              # connections so far
        self._sent: dict[str, tuple[int, str]] = {}    # retained topic -> (session, payload) last published
        self._outbox: queue.Queue = queue.Queue(maxsize=settings.outbox)
        self._stop = threading.Event()
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self._last_info: Any = None
        self._model = ""

    # ------------------------------------------------------------------ topics
    def t(self, *levels: str) -> str:
        return "/".join((self.s.prefix, *levels))

    def start(self, info: Mapping[str, Any]) -> None:
        import paho.mqtt.client as mqtt

        s = self.s
        self._model = str(info.get("model", ""))
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id or "", clean_session=True)
        if s.user is not None:
            c.username_pw_set(s.user, s.password)
        if s.tls:
            c.tls_set()
        c.will_set(self.t("available"), "offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=max(1, round(s.reconnect_min_s)), max_delay=max(1, round(s.reconnect_max_s)))
        c.max_queued_messages_set(s.outbox)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        self._client = c
        self._retain(self.t("available"), "online")
        c.connect_async(s.host, s.port, keepalive=s.keepalive_s)   # a broker that is down now is retried later
        c.loop_start()
        self._thread = threading.Thread(target=self._drain, name="fakewatch-mqtt-outbox", daemon=True)
        self._thread.start()

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any = None) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("mqtt %s:%d refused the connection: %s", self.s.host, self.s.port, reason_code)
            return
        log.info("mqtt connected to %s:%d", self.s.host, self.s.port)
        self._session += 1
        self._resync.set()       # the outbox thread republishes the retained topics (one publisher keeps order)
        self.connected.set()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any = None) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("mqtt lost %s:%d (%s); reconnecting with backoff", self.s.host, self.s.port, reason_code)

    # ------------------------------------------------------------------ outbox
    def _put(self, topic: str, payload: str, retain: bool = False, qos: int | None = None) -> None:
        try:
            self._outbox.put_nowait((topic, payload, retain, self.s.qos if qos is None else qos))
        except queue.Full:
            self.dropped += 1
            if retain:
                self._resync.set()            # the newest value must still reach the broker

    def _retain(self, topic: str, payload: str) -> None:
        with self._retained_lock:
            self._retained[topic] = payload
        self._put(topic, payload, retain=True, qos=max(1, self.s.qos))

    def _drain(self) -> None:
        import paho.mqtt.client as mqtt

        backlog: list = []
        while True:
            if self._resync.is_set() and self.connected.is_set():
                backlog = self._resync_retained(backlog)
            if backlog:
                item = backlog.pop(0)
            else:
                try:
                    item = self._outbox.get(timeout=0.2)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
            topic, payload, retain, qos = item
            if retain and not self.connected.is_set():
                continue                  # kept in _retained: the resync after (re)connecting sends the newest
            try:
                info = self._client.publish(topic, payload, qos=qos, retain=retain)
            except Exception as e:           # a closed socket mid-publish: count it, keep going
                log.debug("mqtt publish %s failed: %s", topic, e)
                self.dropped += 1
                continue
            if info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0):
                if retain:                # (QoS>0 while away: paho keeps it and sends it after reconnecting)
                    self._sent[topic] = (self._session, payload)
                self.published += 1
                self._last_info = info
            else:                         # paho's queue is full (an outage's backlog still in flight)
                self.dropped += 1
                if retain:
                    self._resync.set()    # the newest value goes out with the next resync

    def _resync_retained(self, backlog: list) -> list:
        """After a (re)connect: send the newest value of every retained topic (a broker restarted without
        persistence forgot them), except topics that still have queued changes, which follow in order (so the
        broker never ends on an older value). Returns the queued items to send next (``backlog`` first).
        If paho's queue is still full of the outage's backlog, the rest is retried a moment later."""
        import paho.mqtt.client as mqtt

        self._resync.clear()
        queued = list(backlog)
        while True:
            try:
                queued.append(self._outbox.get_nowait())
            except queue.Empty:
                break
        pending = {t for t, _p, retain, _q in queued if retain}
        with self._retained_lock:
            current = dict(self._retained)
        for topic, payload in current.items():
            if topic not in pending and self._sent.get(topic) != (self._session, payload):
                if self._client.publish(topic, payload, qos=1, retain=True).rc != mqtt.MQTT_ERR_SUCCESS:
                    self._resync.set()
                    self._stop.wait(0.1)          # let in-flight messages drain before the retry
                    break
                self._sent[topic] = (self._session, payload)
        return queued

    # ------------------------------------------------------------------ Output hooks
    def state(self, camera: str, state: str, score: float | None) -> None:
        self._announce(camera)
        self._retain(self.t(topic_name(camera), "state"), state)

    def status(self, camera: str, status: str, message: str) -> None:
        self._announce(camera)
        self._retain(self.t(topic_name(camera), "status"), status)

    def _announce(self, camera: str) -> None:
        """Home Assistant MQTT discovery: one retained config per camera (once), so HA creates the entity."""
        if self.s.discovery_prefix is None:
            return
        cam = topic_name(camera)
        topic, payload = discovery_config(self.s, cam, self._model)
        with self._retained_lock:
            if topic in self._retained:
                return
        self._retain(topic, json.dumps(payload, separators=(",", ":")))

    def event(self, event: Mapping[str, Any]) -> None:
        self._put(self.t("events"), json.dumps(event, separators=(",", ":"), allow_nan=False))

    def stats(self, stats: Mapping[str, Any]) -> None:
        self._put(self.t("stats"), json.dumps(stats, separators=(",", ":"), default=str))

    def close(self, timeout: float = 5.0) -> None:
        if self._client is None:
            return
        self._stop.set()                  # the outbox thread sends what is queued, then ends
        if self._thread is not None:
            self._thread.join(timeout)
        with self._retained_lock:
            self._retained[self.t("available")] = "offline"
        try:                              # last, directly: it must not be dropped by a full outbox
            self._last_info = self._client.publish(self.t("available"), "offline", qos=1, retain=True)
        except Exception as e:
            log.debug("mqtt offline publish failed: %s", e)
        if self.connected.is_set() and self._last_info is not None:
            try:
                self._last_info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()      # a clean disconnect: the broker does not send the will ("offline" is set)
        self._client.loop_stop()
        self._client = None
