"""``fakewatch watch --config cameras.yaml``: one YAML file of named cameras, model, decision settings and outputs.

The file is validated on load by the pydantic models of ``config_models.py`` (unknown keys, bad URLs, out-of-range
numbers and missing environment variables are reported together, one line each, naming the key path). Secrets are
``${ENV_VAR}`` references, substituted at load time and never required in the file; ``--print-config`` shows them as
the reference (or ``***`` when written in the file) and redacts credentials in URLs. Command-line flags override the
file. ``docs/config.schema.json`` is generated from these models (``python -m fakewatch.runtime.config --schema``) and
``tests/runtime/test_config.py`` checks it is current; editors can validate a file with it (``# yaml-language-server:
$schema=...``).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr, ValidationError

from fakewatch.core.redact import REDACTED, redact
from fakewatch.runtime.config_keys import CLI_KEYS
from fakewatch.runtime.config_models import (  # noqa: F401  (the sections are part of this module's interface)
    CAMERA_NAME, CameraDetect, CameraSettings, ClipConfig, ConfigError, DashboardConfig, DecisionSettings,
    DetectSettings, MetricsConfig, MqttConfig, SnapshotsConfig, TritonSettings, WatchFile, WebhookConfig, _check_url,
    _replace, _Strict)

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "config.schema.json"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
