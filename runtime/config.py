"""``fakewatch watch --config cameras.yaml``: one YAML file of named cameras, model, decision settings and outputs.

The file is validated on load by the pydantic models below (unknown keys, bad URLs, out-of-range numbers and missing
environment variables are reported together, one line each, naming the key path). Secrets are ``${ENV_VAR}``
references, substituted at load time and never required in the file; ``--print-config`` shows them as the reference
(or ``***`` when written in the file) and redacts credentials in URLs. Command-line flags override the file.
``docs/config.schema.json`` is generated from these models (``python -m fakewatch.runtime.config --schema``) and
``tests/runtime/test_config.py`` checks it is current; editors can validate a file with it
(``# yaml-language-server: $schema=...``).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from fakewatch.core.redact import REDACTED, redact
from fakewatch.runtime.config_keys import CLI_KEYS
from fakewatch.runtime.tracking import DEFAULT_DETECT_EVERY

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "config.schema.json"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
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


# ---------------------------------------------------------------------------------------------- loading
def _substitute(node: Any, env: Mapping[str, str], path: tuple, refs: dict, problems: list[str]) -> Any:
    """Replace ``${VAR}`` in every string; remember which paths used a reference (print-config shows those)."""
    if isinstance(node, dict):
        return {k: _substitute(v, env, (*path, k), refs, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, (*path, i), refs, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        missing = [m for m in ENV_REF.findall(node) if m not in env]
        for name in missing:
            problems.append(f"{_dotted(path)}: environment variable {name} is not set (the file says ${{{name}}}); "
                            f"export it before starting fakewatch")
        if missing:
            return node
        refs[path] = node
        return ENV_REF.sub(lambda m: env[m.group(1)], node)
    return node


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _problems(e: ValidationError, refs: Mapping[tuple, str], flags: Mapping[tuple, str] | None = None) -> list[str]:
    """One line per error. ``flags``: key path -> the command-line flag that set it (named instead of the path)."""
    out = []
    for err in e.errors():
        loc = tuple(err["loc"])
        flag = (flags or {}).get(loc)
        if flag is not None:
            msg = err["msg"].removeprefix("Value error, ")
            out.append(f"{flag}: {msg}" + ("" if _shown(err.get("input")) in msg or flag in msg
                                           else f" (got {_shown(err.get('input'))})"))
            continue
        if err["type"] == "extra_forbidden":
            parent = loc[:-1]
            valid = _valid_keys(parent)
            out.append(f"{_dotted(loc)}: unknown key" + (f"; valid keys here: {', '.join(valid)}" if valid else ""))
            continue
        msg = err["msg"].removeprefix("Value error, ")
        value = "" if loc in refs or "input" not in err or isinstance(err["input"], (dict, list)) \
            or redact(err["input"]) in msg else f" (got {_shown(err['input'])})"
        out.append(f"{_dotted(loc)}: {msg}{value}")
    return out


def _shown(value: Any) -> str:
    return repr(redact(value)) if isinstance(value, str) else repr(value)


def _valid_keys(parent: tuple) -> list[str]:
    """The keys a mapping at ``parent`` (a pydantic error location) accepts."""
    import typing

    model: Any = WatchFile
    skip_name = False
    for key in parent:
        if skip_name or isinstance(key, int):      # a camera name, a list index
            skip_name = False
            continue
        field = model.model_fields.get(key) if model is not None else None
        if field is None:
            return []
        model = _model_of(field.annotation)
        skip_name = typing.get_origin(field.annotation) is dict
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        m = _model_of(arg)
        if m is not None:
            return m
    return None


def load_config(path: str | Path, env: Mapping[str, str] | None = None, overrides: Mapping[tuple, Any] = (),
                flags: Mapping[tuple, str] | None = None) -> tuple[WatchFile, dict[tuple, str]]:
    """Read, substitute ``${ENV}``, apply ``overrides`` (key path -> value), validate. Returns the config and the
    key paths that came from environment references. Raises :class:`ConfigError` listing every problem."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--config {p}: no such file; write one like docs/examples/cameras.yaml")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(str(p), [f"not valid YAML: {e}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(p), [f"(top level): expected a mapping of keys, got {type(raw).__name__}"])
    return from_dict(raw, str(p), env, overrides, flags)


def from_dict(raw: Mapping[str, Any], source: str = "config", env: Mapping[str, str] | None = None,
              overrides: Mapping[tuple, Any] = (), flags: Mapping[tuple, str] | None = None
              ) -> tuple[WatchFile, dict[tuple, str]]:
    refs: dict[tuple, str] = {}
    problems: list[str] = []
    data = _substitute(copy.deepcopy(dict(raw)), os.environ if env is None else env, (), refs, problems)
    for path, value in dict(overrides).items():
        node: Any = data
        for key in path[:-1]:
            if node.get(key) is None:          # absent or `key: null` in the file: the flag creates the section
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):     # the file's value is wrong; validation reports it
                break
        if isinstance(node, dict):
            node[path[-1]] = value
            refs.pop(path, None)
    try:
        cfg = WatchFile.model_validate(data)
    except ValidationError as e:
        problems += _problems(e, refs, flags)
        cfg = None
    if problems:
        raise ConfigError(source, problems)
    return cfg, refs


# ---------------------------------------------------------------------------------------------- CLI merge
def _cli_value(dest: str, value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def merge_args(args: argparse.Namespace, explicit: set[str], env: Mapping[str, str] | None = None
               ) -> tuple[WatchFile, dict[tuple, str], set[str]]:
    """The file (if ``--config``) overridden by the flags the user gave; without a file, the flags alone.
    Returns the config, the key paths that came from ``${ENV}`` references, and the names given to command-line
    sources (which join the file's cameras)."""
    over: dict[tuple, Any] = {}
    flags: dict[tuple, str] = {}
    for dest, path in CLI_KEYS.items():
        if dest in explicit and getattr(args, dest, None) is not None:
            over[path] = _cli_value(dest, getattr(args, dest))
            flags[path] = "--" + dest.replace("_", "-")
    if "no_pace" in explicit and args.no_pace:
        over[("pace",)] = False
    if args.config is not None:
        cfg, refs = load_config(args.config, env, over, flags)
        source = str(args.config)
    else:
        base = {}
        cfg, refs = from_dict(base, "command line", env, over, flags)
        source = "command line"
    extra: dict[str, Any] = {}
    cli_names: set[str] = set()
    if getattr(args, "webhook", None):       # --webhook adds to the file's webhooks
        extra["webhooks"] = [*cfg.model_dump(mode="python")["webhooks"], *({"url": u} for u in args.webhook)]
    if args.sources:                          # sources on the command line are cameras too (named by their id)
        cams = {k: v.model_dump() for k, v in cfg.cameras.items()}
        for uri in args.sources:
            name = _free_name(cams, uri)
            cams[name] = {"source": uri}
            cli_names.add(name)
        extra["cameras"] = cams
    if extra:
        data = cfg.model_dump(mode="python")
        data.update(extra)
        _unsecret(data)
        try:
            cfg = WatchFile.model_validate(data)
        except ValidationError as e:
            raise ConfigError(source, _problems(e, refs)) from None
    return cfg, refs, cli_names


def _unsecret(node: Any) -> None:
    """model_dump keeps SecretStr objects; turn them back into strings for a re-validation."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, SecretStr):
                node[k] = v.get_secret_value()
            else:
                _unsecret(v)
    elif isinstance(node, list):
        for v in node:
            _unsecret(v)


def _free_name(taken: Mapping[str, Any], uri: str) -> str:
    """A camera name for a command-line source: 'demo', the file's stem, or the host; unique."""
    parts = urlsplit(uri)
    base = parts.hostname if parts.scheme and parts.hostname else Path(uri).stem or uri
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_-")[:48] or "camera"
    if not re.match(CAMERA_NAME, base):
        base = "cam_" + base
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


# ---------------------------------------------------------------------------------------------- output
def redacted(cfg: WatchFile, refs: Mapping[tuple, str]) -> dict[str, Any]:
    """The merged config as plain data, safe to print: ``${VAR}`` references as written, literal secrets as ``***``,
    credentials in URLs redacted."""
    data = cfg.model_dump(mode="json", exclude_none=True)

    def walk(node: Any, path: tuple) -> Any:
        if path in refs:
            return refs[path]
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str):
            return REDACTED if node.startswith("**") and set(node) == {"*"} else redact(node)
        return node

    return walk(data, ())


def dump_yaml(cfg: WatchFile, refs: Mapping[tuple, str]) -> str:
    import yaml

    return yaml.safe_dump(redacted(cfg, refs), sort_keys=False, default_flow_style=False)


def json_schema() -> dict[str, Any]:
    schema = WatchFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://fakewatch.dev/schemas/watch-config-v1.json"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":   # python -m fakewatch.runtime.config --schema  (rewrites docs/config.schema.json)
    import sys

    if sys.argv[1:] == ["--schema"]:
        SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}")
    else:
        print("usage: python -m fakewatch.runtime.config --schema", file=sys.stderr)
        sys.exit(2)
