"""Sinks (JSON lines with redaction + schema, live view) and latency bookkeeping."""
from __future__ import annotations

import io
import json

import jsonschema
import pytest

from fakewatch.runtime.alerts import ALERT_SCHEMA, JsonlSink, LiveView, make_record
from fakewatch.runtime.latency import LatencyTracker, stage_durations_ms


def test_records_are_redacted_nan_free_and_valid(tmp_path):
    path = tmp_path / "a.jsonl"
    sink = JsonlSink(path)
    sink.emit(make_record("source", 0.5, stream="rtsp://admin:hunter2@cam/live", state="failed",
                          message="rtsp://admin:hunter2@cam/live?token=abc: refused"))
    sink.emit(make_record("state", 1.0, stream="rtsp://admin:hunter2@cam/live", state="UNKNOWN", previous="REAL",
                          score=float("nan"), seq=3, latency_ms={"total": 1.5}, truth=None))
    sink.close()
    text = path.read_text()
    assert "hunter2" not in text and "abc" not in text and "rtsp://***@cam/live" in text
    recs = [json.loads(line) for line in text.splitlines()]
    for r in recs:
        jsonschema.validate(r, ALERT_SCHEMA)
    assert recs[1]["score"] is None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**recs[1], "state": "MAYBE"}, ALERT_SCHEMA)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        JsonlSink(tmp_path / "no" / "dir.jsonl")


def test_live_view_draws_one_line_per_stream_only_on_a_tty():
    quiet = io.StringIO()
    LiveView(quiet).emit(make_record("state", 0, stream="a", state="FAKE", previous="REAL", score=0.9, seq=1,
                                     latency_ms={}))
    logged = quiet.getvalue()                            # not a TTY: state changes only, one plain line each
    assert logged.count("\n") == 1 and "REAL -> FAKE" in logged and "a " in logged and "\x1b" not in logged
    LiveView(quiet).emit(make_record("status", 0, stream="a", state="FAKE", score=0.9, frames=1, dropped=0,
                                     no_face=0, fps=1.0, latency_ms={}))
    assert quiet.getvalue() == logged                     # no table off a TTY
    out = io.StringIO()
    view = LiveView(out, force=True)
    for sid, state in (("cam-a", "FAKE"), ("cam-b", "REAL"), ("cam-a", "REAL")):
        view.emit(make_record("state", 0, stream=sid, state=state, previous="UNKNOWN", score=0.5, seq=1,
                              latency_ms={}))
    frames = out.getvalue().split("\x1b[2F")             # redraws move back up over the 2 stream lines
    last = frames[-1]
    # the last change is logged above a fresh table of both streams
    assert last.count("\n") == 3 and "UNKNOWN -> \x1b[32mREAL" in last
    table = last.split("\n", 1)[1]
    assert "cam-a" in table and "cam-b" in table and "FAKE" not in table


def test_stage_durations_and_drops_and_percentiles():
    t = {"capture": 1.0, "dequeue": 1.001, "roi": 1.002, "preprocess": 1.004, "batch": 1.010, "decision": 1.011,
         "alert": 1.0115}
    d = stage_durations_ms(t)
    assert d["batch"] == pytest.approx(6.0) and d["decision"] == pytest.approx(1.0)   # no inference stamp
    assert "inference" not in d and d["total"] == pytest.approx(11.5)
    lt = LatencyTracker()
    for seq in (0, 1, 4, 5, 9):                          # gaps: 2 + 3 frames never reached the pipeline
        lt.record("s", seq, {"capture": seq / 10, "alert": seq / 10 + 0.01 * (seq + 1)}, faces=0 if seq == 4 else 1)
    st = lt.stream_stats("s")
    assert st["frames"] == 5 and st["dropped"] == 5 and st["no_face"] == 1
    assert st["latency_ms"]["total"]["p50"] == pytest.approx(50.0, rel=0.07)   # 10, 20, 50, 60, 100 ms (buckets)
    assert st["latency_ms"]["total"]["p99"] == pytest.approx(98.4, rel=0.07)
    assert st["fps"] == pytest.approx(4 / (1.0 - 0.01), rel=1e-3)
