"""Alert sinks: JSON lines (stdout or a file, one schema) and a human live view for terminals.

Every record is one JSON object on one line with ``"type"`` in {state, status, source, frame, summary}, the schema
version ``"v"``, the wall-clock time ``"ts"`` (Unix seconds) and ``"t"`` (seconds since the run started).
:data:`ALERT_SCHEMA` is the JSON Schema (draft 2020-12) of a line; docs/runtime.md shows it and
``fakewatch watch --print-schema`` prints it. Stream ids and messages pass through :func:`fakewatch.core.redact` before
they are written, so a URL with credentials never reaches a log.
"""
from __future__ import annotations

import io
import json
import math
import sys
import time
from pathlib import Path
from typing import IO, Any, Mapping

from fakewatch.core.redact import redact

SCHEMA_VERSION = 1

_num = {"type": "number"}
_num_or_null = {"type": ["number", "null"]}
_pct = {"type": "object", "properties": {"p50": _num_or_null, "p90": _num_or_null, "p99": _num_or_null},
        "required": ["p50", "p90", "p99"]}
_stage_pct = {"type": "object", "additionalProperties": _pct}
_stage_ms = {"type": "object", "additionalProperties": _num}
_state = {"enum": ["UNKNOWN", "REAL", "FAKE"]}
_base = {"v": {"const": SCHEMA_VERSION}, "ts": _num, "t": _num}
_truth = {"type": ["object", "null"]}
# optional on frame/state records of face models: one entry per scored face, stable id per stream (runtime/tracking.py)
_tracks = {"type": "array", "items": {
    "type": "object", "properties": {"id": {"type": "integer"}, "box": {"type": "array", "items": {"type": "integer"},
                                                                     "minItems": 4, "maxItems": 4},
                                     "p_fake": _num_or_null}, "required": ["id", "box"]}}


def _record(type_: str, props: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": {"type": {"const": type_}, **_base, **props},
            "required": ["type", "v", "ts", "t", *required]}


_stream_status = {
    "type": "object",
    "properties": {"state": _state, "score": _num_or_null, "frames": {"type": "integer"},
                   "dropped": {"type": "integer"}, "no_face": {"type": "integer"}, "fps": _num,
                   "source_state": {"type": "string"}, "latency_ms": _stage_pct},
    "required": ["state", "score", "frames", "dropped", "no_face", "fps", "latency_ms"],
}

ALERT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://fakewatch.dev/schemas/alert-v1.json",
    "title": "fakewatch watch JSON-lines record",
    "oneOf": [
        _record("state", {
            "stream": {"type": "string"}, "state": _state, "previous": _state, "score": _num_or_null,
            "frame_score": _num_or_null, "seq": {"type": "integer"}, "stream_time": _num,
            "faces": {"type": "integer"}, "latency_ms": _stage_ms, "truth": _truth, "tracks": _tracks},
            ["stream", "state", "previous", "score", "seq", "latency_ms"]),
        _record("status", {"stream": {"type": "string"}, **_stream_status["properties"]},
                ["stream", *_stream_status["required"]]),
        _record("source", {"stream": {"type": "string"},
                           "state": {"enum": ["connecting", "live", "reconnecting", "stale", "failed", "eof",
                                              "stopped"]},
                           "message": {"type": "string"}}, ["stream", "state", "message"]),
        _record("frame", {
            "stream": {"type": "string"}, "seq": {"type": "integer"}, "stream_time": _num, "state": _state,
            "score": _num_or_null, "frame_score": _num_or_null, "faces": {"type": "integer"},
            "latency_ms": _stage_ms, "truth": _truth, "tracks": _tracks},
            ["stream", "seq", "state", "score", "frame_score", "faces", "latency_ms"]),
        _record("summary", {
            "duration_s": _num, "model": {"type": "string"}, "backend": {"type": "string"},
            "batches": {"type": "object", "properties": {"count": {"type": "integer"}, "mean_size": _num,
                                                         "histogram": {"type": "object"},
                                                         "max_batch": {"type": ["integer", "null"]},
                                                         "max_wait_ms": _num_or_null},
                        "required": ["count", "mean_size", "histogram"]},
            "streams": {"type": "object", "additionalProperties": _stream_status},
            "latency_ms": _stage_pct, "stop_reason": {"type": "string"}},
            ["duration_s", "batches", "streams", "latency_ms"]),
    ],
}


def _clean(value: Any) -> Any:
    """NaN/inf -> null (JSON has neither), tuples -> lists, numpy scalars -> Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def make_record(type_: str, t: float, **fields: Any) -> dict[str, Any]:
    """A schema-conforming record; ``stream``/``message`` are redacted here, once, for every sink."""
    rec: dict[str, Any] = {"type": type_, "v": SCHEMA_VERSION, "ts": round(time.time(), 6), "t": round(t, 6)}
    for key in ("stream", "message"):
        if key in fields and fields[key] is not None:
            fields[key] = redact(fields[key])
    rec.update(fields)
    return _clean(rec)


class Sink:
    """Receives every record; ``close`` flushes.

    A sink with ``wants_frames = True`` also gets :meth:`frame` for every decided frame (image, boxes, per-face
    scores, stage stamps: what metrics and evidence snapshots need) and :meth:`batch` for every batch run. Both are
    called on the pipeline thread, so they must be quick and must never block on I/O.
    """

    wants_frames = False

    def emit(self, record: Mapping[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def frame(self, view: Any) -> None:
        """One decided frame (a ``fakewatch.runtime.pipeline.FrameView``)."""

    def batch(self, rows: int, reason: str) -> None:
        """One batch went through the model with ``rows`` inputs, pushed for ``reason``."""

    def close(self) -> None:
        pass


class JsonlSink(Sink):
    """One JSON object per line to a file path, or to stdout for ``-``. Line-buffered so ``tail -f`` works."""

    def __init__(self, target: str | Path | IO[str], types: tuple[str, ...] | None = None) -> None:
        self.types = types
        if isinstance(target, (str, Path)):
            if str(target) == "-":
                self._fh, self._own = sys.stdout, False
            else:
                path = Path(target)
                if not path.parent.is_dir():
                    raise FileNotFoundError(f"--json {path}: directory {path.parent} does not exist")
                self._fh, self._own = open(path, "w", buffering=1, encoding="utf-8"), True
        else:
            self._fh, self._own = target, False

    def emit(self, record: Mapping[str, Any]) -> None:
        if self.types is not None and record.get("type") not in self.types:
            return
        self._fh.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")

    def close(self) -> None:
        try:
            self._fh.flush()
        finally:
            if self._own:
                self._fh.close()


class LiveView(Sink):
    """Human view: every state change as a log line (REAL -> FAKE alerts stay visible), plus, on a terminal, one
    refreshed line per stream below them (plain ANSI). Off a TTY only the state-change lines are written, uncoloured.
    """

    COLORS = {"FAKE": "\x1b[1;31m", "REAL": "\x1b[32m", "UNKNOWN": "\x1b[33m"}

    def __init__(self, stream: IO[str] | None = None, refresh_s: float = 0.25, force: bool = False) -> None:
        self.out = stream if stream is not None else sys.stderr
        self.enabled = force or (hasattr(self.out, "isatty") and self.out.isatty())   # the refreshed table
        self.refresh_s = refresh_s
        self._rows: dict[str, dict[str, Any]] = {}
        self._drawn = 0
        self._last_draw = 0.0

    def emit(self, record: Mapping[str, Any]) -> None:
        if "stream" not in record:
            return
        if record["type"] == "state":
            self._log(record)
        if not self.enabled:
            return
        row = self._rows.setdefault(record["stream"], {})
        kind = record["type"]
        if kind in ("state", "frame", "status"):
            row.update({k: record[k] for k in ("state", "score", "fps", "frames", "dropped") if k in record})
            if kind == "status":
                row["p50"] = (record.get("latency_ms", {}).get("total") or {}).get("p50")
        elif kind == "source":
            row["source"] = record["state"]
        now = time.monotonic()
        if kind in ("state", "source") or now - self._last_draw >= self.refresh_s:
            self._draw()
            self._last_draw = now

    def _log(self, rec: Mapping[str, Any]) -> None:
        """One persistent line per state change, written above the live table (which is redrawn below it)."""
        state = rec["state"]
        score = rec.get("score")
        truth = rec.get("truth") or {}
        when = f"+{rec['t']:.1f}s frame {rec.get('seq')}"    # run time (live stream_time is a monotonic clock)
        colour, reset = (self.COLORS.get(state, ""), "\x1b[0m") if self.enabled else ("", "")
        line = (f"{time.strftime('%H:%M:%S')}  {rec['stream'][:40]}  {rec.get('previous', '?')} -> "
                f"{colour}{state}{reset}  P(fake) {'-' if score is None else f'{score:.3f}'}  {when}"
                + (f"  (truth: {'fake' if truth['fake'] else 'real'})" if "fake" in truth else ""))
        if self.enabled and self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[0J")   # erase the table, log, redraw it below
            self._drawn = 0
        self.out.write(line + "\n")
        self.out.flush()

    def _line(self, sid: str, row: Mapping[str, Any]) -> str:
        state = row.get("state", "UNKNOWN")
        score = row.get("score")
        p50 = row.get("p50")
        return (f"{self.COLORS.get(state, '')}{state:<7}\x1b[0m {sid[:40]:<40} "
                f"P(fake) {'  -  ' if score is None else f'{score:.3f}'}  "
                f"{row.get('fps', 0.0) or 0.0:5.1f} fps  frames {row.get('frames', 0):>6}  "
                f"dropped {row.get('dropped', 0):>5}  latency p50 {'-' if p50 is None else f'{p50:.1f} ms'}"
                f"  [{row.get('source', 'live')}]")

    def _draw(self) -> None:
        buf = io.StringIO()
        if self._drawn:
            buf.write(f"\x1b[{self._drawn}F")   # back to the first line we drew
        for sid, row in self._rows.items():
            buf.write("\x1b[2K" + self._line(sid, row) + "\n")
        self._drawn = len(self._rows)
        self.out.write(buf.getvalue())
        self.out.flush()

    def close(self) -> None:
        if self.enabled and self._rows:
            self._draw()
