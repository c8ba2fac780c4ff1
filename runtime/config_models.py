"""The typed sections of ``cameras.yaml`` (pydantic models): one class per section, validated on load.

``fakewatch.runtime.config`` loads a file into :class:`WatchFile`, merges command-line flags and writes the JSON
Schema from these models; they are kept here so each file stays about one thing.
"""
from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from fakewatch.core.redact import redact
from fakewatch.runtime.tracking import DEFAULT_DETECT_EVERY

CAMERA_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class ConfigError(ValueError):
    """Every problem of one config file, one line each: ``<file>: <key.path>: <what is wrong>``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        head = f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''}" if len(problems) > 1 else source
        body = problems[0] if len(problems) == 1 else "\n  " + "\n  ".join(problems)
        super().__init__(f"{head}: {body}" if len(problems) == 1 else head + body)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DecisionSettings(_Strict):
    window: str = Field("2s", description="rolling window: seconds ('2s', '500ms') or frames ('30f')")
    aggregate: Literal["confident", "mean", "ema"] = "confident"
    enter: float | None = Field(None, ge=0, le=1, description="rolling P(fake) to enter FAKE (default: threshold+0.1)")
    leave: float | None = Field(None, ge=0, le=1, description="rolling P(fake) to leave FAKE (default: threshold-0.1)")
    min_duration: float = Field(1.0, ge=0, description="seconds a REAL<->FAKE change must hold")

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        from fakewatch.runtime.watch_cli import parse_window

        parse_window(v)
        return v


class DetectSettings(_Strict):
    every: int = Field(DEFAULT_DETECT_EVERY, ge=1,
                       description="run the face detector every K frames per camera and track faces in between")
    max_faces: int = Field(4, ge=1)
    hold: float = Field(0.5, ge=0, description="keep face boxes this many seconds when detection misses")
    face_detector: str | None = Field(None, description="blazeface (default), blazeface-short, haar, yunet:PATH, "
                                                        "a face_boxes model file, or grpc://HOST:PORT/NAME (BlazeFace "
                                                        "on a Triton server; runtime/face_detectors.py)")


class CameraDetect(_Strict):
    every: int | None = Field(None, ge=1, description="this camera's detect-every (default: detect.every)")


class CameraSettings(_Strict):
    source: str = Field(..., min_length=1, description="webcam index, /dev/videoN, rtsp://, http(s)://, file, demo")
    enabled: bool = True
    detect: CameraDetect = Field(default_factory=CameraDetect)
    stale_after: float | None = Field(None, gt=0, description="seconds without a new frame before 'stale'")
    max_retries: int | None = Field(None, ge=0, description="this camera's reconnects before 'failed'")


class MqttConfig(_Strict):
    url: str | None = Field(None, description="mqtt://[user:pass@]host[:port][/prefix] (mqtts:// = TLS)")
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = Field(None, description="use an ${ENV_VAR} reference")
    topic_prefix: str | None = Field(None, description="default 'fakewatch' (or the URL's path)")
    client_id: str | None = None
    qos: Literal[0, 1, 2] = 1
    stats_interval: float = Field(60.0, gt=0, description="seconds between <prefix>/stats messages")
    outbox: int = Field(1000, ge=1, description="messages kept while the broker is away; more are dropped")
    discovery: bool = Field(False, description="announce cameras to Home Assistant (MQTT discovery)")
    discovery_prefix: str = "homeassistant"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return v if v is None else _check_url(v, ("mqtt", "mqtts"), "mqtt://[user:pass@]host[:port][/prefix]")

    @model_validator(mode="after")
    def _where(self) -> "MqttConfig":
        if self.url is None and self.host is None:
            raise ValueError("give url: mqtt://host[:port][/prefix] or host:")
        return self

    def settings(self) -> Any:
        from fakewatch.runtime.mqtt_output import MqttSettings

        pw = self.password.get_secret_value() if self.password is not None else None
        kw: dict[str, Any] = {"client_id": self.client_id, "qos": self.qos, "outbox": self.outbox,
                              "discovery_prefix": self.discovery_prefix if self.discovery else None}
        if self.url is not None:
            if self.topic_prefix is not None:
                kw["prefix"] = self.topic_prefix
            s = MqttSettings.from_url(self.url, user=self.user, password=pw, **kw)
            return s if self.port is None else _replace(s, port=self.port)
        return MqttSettings(host=self.host or "", port=self.port or 1883, user=self.user, password=pw,
                            prefix=self.topic_prefix or "fakewatch", **kw)


class WebhookConfig(_Strict):
    url: str
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="extra headers (values are secret)")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key: X-Fakewatch-Signature-256 header")
    timeout: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)
    queue_size: int = Field(100, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("http", "https"), "http(s)://host[:port]/path")

    def settings(self) -> Any:
        from fakewatch.runtime.webhook_output import WebhookSettings

        return WebhookSettings(self.url, {k: v.get_secret_value() for k, v in self.headers.items()},
                               self.secret.get_secret_value() if self.secret is not None else None,
                               timeout_s=self.timeout, retries=self.retries, queue_size=self.queue_size)


class MetricsConfig(_Strict):
    port: int = Field(9108, ge=0, le=65535, description="/metrics port (0 = any free port)")
    host: str = "0.0.0.0"


class DashboardConfig(_Strict):
    listen: str = Field("127.0.0.1:8080", description="PORT (127.0.0.1 only) or HOST:PORT; any other address must "
                                                      "be written out, e.g. 0.0.0.0:8080 (docs/dashboard.md)")
    token: SecretStr | None = Field(None, description="required as 'Authorization: Bearer' or ?token= (use an "
                                                      "${ENV_VAR} reference)")
    jpeg_fps: float = Field(4.0, gt=0, description="newest-frame JPEG encodes per camera per second, at most")
    jpeg_width: int = Field(640, ge=32, description="frames are downscaled to this width")
    history: float = Field(300.0, gt=0, description="seconds of score history (sparkline)")
    max_events: int = Field(100, ge=1, description="newest events kept and listed")
    sse_clients: int = Field(8, ge=1, description="live-update connections at once")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        from fakewatch.runtime.http_server import parse_listen

        host, port = parse_listen(v)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ClipConfig(_Strict):
    enabled: bool = False
    pre: float = Field(2.0, ge=0, description="seconds before the episode start")
    post: float = Field(2.0, ge=0, description="seconds after the episode start")
    max_mb: float = Field(64.0, gt=0, description="ring buffer cap per camera")


class SnapshotsConfig(_Strict):
    dir: str
    quality: int = Field(90, ge=1, le=100)
    keep: int = Field(1000, ge=0, description="newest evidence files kept (0 = no limit)")
    max_age_days: float | None = Field(7.0, gt=0)
    clip: ClipConfig = Field(default_factory=ClipConfig)


class TritonSettings(_Strict):
    """``backend: triton``: where the model is served (``fakewatch serve`` or a tritonserver container)."""
    url: str = Field("grpc://127.0.0.1:8001", description="the Triton server's gRPC endpoint, grpc://HOST:PORT")
    model: str = Field("deepfake", description="model name on the server; its config carries the contract")
    shm: Literal["auto", "on", "off"] = Field("auto", description="input batches through system shared memory "
                                                                  "(auto: for a server on this machine)")
    stream: bool = Field(True, description="every request on one gRPC bidirectional stream (false: one gRPC call "
                                           "each, e.g. for an L7 balancer spreading requests over servers)")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from fakewatch.core.triton import parse_triton_url

        return str(parse_triton_url(v))


class WatchFile(_Strict):
    """Top level of ``cameras.yaml``."""
    model_config = ConfigDict(extra="forbid", validate_default=True, title="fakewatch watch config")

    model: str | None = Field(None, description="model artifact (default: the bundled demo model)")
    backend: Literal["onnxruntime", "torch", "tensorrt", "openvino", "triton"] | None = None
    device: Literal["auto", "cpu", "cuda"] | None = None
    threads: int = Field(0, ge=0)
    batch: int | None = Field(None, ge=1)
    max_wait_ms: float | None = Field(None, ge=0)
    decision: DecisionSettings = Field(default_factory=DecisionSettings)
    detect: DetectSettings = Field(default_factory=DetectSettings)
    stale_after: float | None = Field(None, gt=0, description="default: 3 frame intervals, at least 2 s")
    max_retries: int | None = Field(None, ge=0, description="reconnects per live source (default: forever)")
    pace: bool = True
    loop: bool = False
    status_interval: float = Field(1.0, ge=0)
    jsonl: str | None = Field(None, description="JSON-lines alerts file ('-' = stdout)")
    cameras: dict[str, CameraSettings] = Field(default_factory=dict)
    mqtt: MqttConfig | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    metrics: MetricsConfig | None = None
    snapshots: SnapshotsConfig | None = None
    dashboard: DashboardConfig | None = None
    triton: TritonSettings = Field(default_factory=TritonSettings)

    @field_validator("cameras")
    @classmethod
    def _names(cls, v: dict[str, CameraSettings]) -> dict[str, CameraSettings]:
        bad = [k for k in v if not re.match(CAMERA_NAME, k)]
        if bad:
            raise ValueError(f"camera name(s) {', '.join(map(repr, bad))}: use letters, digits, '_' and '-' "
                             f"(they become MQTT topics and file names)")
        return v

    def enabled_cameras(self) -> dict[str, CameraSettings]:
        return {k: c for k, c in self.cameras.items() if c.enabled}


def _replace(obj: Any, **kw: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **kw)


def _check_url(v: str, schemes: tuple[str, ...], form: str) -> str:
    try:
        parts = urlsplit(v)
        parts.port
    except ValueError as e:
        raise ValueError(f"{redact(v)!r} is not a valid URL ({e}); expected {form}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{redact(v)!r}: expected {form}")
    return v
