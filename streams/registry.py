"""`open_source`: one string, as users type it, to a `Source`. Kinds are a table, tried in order."""
from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fakewatch.core.redact import redact
from fakewatch.streams.capture import NETWORK_SCHEMES
from fakewatch.streams.source import Source, SourceError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")


def _scheme(uri: str) -> str | None:
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else None


def _is_webcam(uri: str) -> bool:
    return uri.isdigit() or re.fullmatch(r"/dev/video\d+", uri) is not None


def _is_demo(uri: str) -> bool:
    return uri.lower() == "demo" or uri.lower().startswith("demo:")


def _is_network(uri: str) -> bool:
    return _scheme(uri) in NETWORK_SCHEMES


def _is_file(uri: str) -> bool:
    s = _scheme(uri)
    return s is None or s == "file"


# (kind, matcher, "module:Class"). Order matters: first match wins.
KINDS: list[tuple[str, Callable[[str], bool], str]] = [
    ("demo", _is_demo, "fakewatch.streams.demo:DemoSource"),
    ("webcam", _is_webcam, "fakewatch.streams.capture:WebcamSource"),
    ("network", _is_network, "fakewatch.streams.capture:NetworkSource"),
    ("file", _is_file, "fakewatch.streams.file_source:FileSource"),
]

USAGE = ("webcam index (0, 1) or /dev/videoN; rtsp://HOST[:PORT]/PATH (also rtsps://, credentials as "
         "USER:PASSWORD@ before HOST); "
         "http(s)://... (MJPEG, HLS); a video file path (mp4, mkv, avi, ...); or 'demo'")


def _load(kind: str, target: str) -> type[Source]:
    mod_name, _, cls_name = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name == mod_name:
            raise SourceError(f"the {kind!r} source is not available in this installation ({mod_name} is "
                              f"missing). Use one of: {USAGE}.") from None
        raise
    return getattr(mod, cls_name)


def open_source(uri: str, source_id: str | None = None, **opts: Any) -> Source:
    """Build the Source for `uri` (validated, not yet opened: the reader thread opens it, or call `.open()`).

    `opts` go to the source's constructor, e.g. `pace=False, loop=True` for files, `width=1280, height=720, fps=30`
    for webcams, `transport="udp", open_timeout_s=5, read_timeout_s=2` for RTSP. Raises SourceError for input that
    is wrong up front (missing file, not a video, no such webcam, unknown scheme) and ValueError for unknown
    options.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError(f"empty source; expected {USAGE}")
    uri = uri.strip()
    for kind, matches, target in KINDS:
        if matches(uri):
            cls = _load(kind, target)
            _check_opts(cls, kind, uri, opts)
            return cls(uri, source_id, **opts)
    scheme = _scheme(uri) or urlsplit(uri).scheme
    raise SourceError(f"{redact(uri)}: unsupported scheme {scheme!r}; expected {USAGE}")


def _check_opts(cls: type[Source], kind: str, uri: str, opts: dict[str, Any]) -> None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if n not in ("self", "uri", "source_id")
             and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ValueError(f"{redact(uri)}: unknown option(s) {', '.join(unknown)} for a {kind} source; valid: "
                         f"{', '.join(valid) or 'none'}")
