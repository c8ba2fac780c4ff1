"""A live source that stops delivering goes 'stale' and UNKNOWN on every output, and recovers when frames return;
--max-retries turns a dead live source into 'failed' (exit code 2 when every source failed)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fakewatch.runtime.alerts import Sink
from fakewatch.runtime.backends import load_runner
from fakewatch.runtime.pipeline import Pipeline, WatchConfig
from fakewatch.runtime.stale import StaleWatch, default_stale_after
from fakewatch.runtime.watch_cli import EXIT_ALL_SOURCES_FAILED
from fakewatch.streams.source import RawRead, Source, SourceError


class Freezing(Source):
    """A live camera whose encoder freezes: ``before`` frames, then nothing (connection still open) until
    ``resume`` is set, then ``after`` frames, then it blocks until closed."""

    kind, live = "webcam", True

    def __init__(self, before: int = 30, after: int = 30) -> None:
        super().__init__("frozen-cam", "frozen")
        self.fps = 25.0
        self.before, self.after, self.n = before, after, 0
        self.frozen = threading.Event()
        self.resume = threading.Event()
        self.closed = threading.Event()

    def open(self) -> None:
        self.closed.clear()

    def read(self) -> RawRead | None:
        self.n += 1
        if self.n > self.before:
            self.frozen.set()
            self.resume.wait()
            if self.n > self.before + self.after:
                self.closed.wait()
                raise SourceError("frozen-cam: closed")
        time.sleep(0.04)
        return RawRead(np.full((48, 64, 3), 40, np.uint8))

    def close(self) -> None:
        self.closed.set()


class Records(Sink):
    def __init__(self) -> None:
        self.recs: list[dict] = []

    def emit(self, record):
        self.recs.append(dict(record))

    def seq(self) -> list[str]:
        out = []
        for r in self.recs:
            if r["type"] == "state":
                out.append(r["state"])
            elif r["type"] == "source" and r["state"] in ("stale", "live"):
                out.append(r["state"])
        return out


def test_default_limits_and_validation():
    assert default_stale_after(25) == 2.0 and default_stale_after(1.0) == 3.0 and default_stale_after(None) == 2.0
    w = StaleWatch(None, {"slow": 10.0})
    assert w.check({"a": (2.5, 25.0), "slow": (5.0, 25.0), "b": (None, None)}) == [("a", 2.5, 2.0)]
    assert w.check({"a": (9.0, 25.0)}) == []          # one transition per outage
    assert w.fresh("a") and not w.fresh("a")
    with pytest.raises(ValueError, match="stale_after must be > 0"):
        StaleWatch(0)


def test_a_frozen_camera_goes_stale_and_unknown_then_recovers(bright_onnx):
    src = Freezing()
    out = Records()
    stop = threading.Event()
    p = Pipeline([src], load_runner(bright_onnx), WatchConfig(stale_after_s=1.0, status_interval_s=0.2),
                 sinks=[out], stop_event=stop)

    def script():
        assert src.frozen.wait(60)
        deadline = time.monotonic() + 60             # keep it frozen until the pipeline has said "stale"
        while not any(r["type"] == "source" and r["state"] == "stale" for r in list(out.recs)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        src.resume.set()
        while time.monotonic() < deadline and out.seq()[-1:] != ["REAL"] or out.seq().count("REAL") < 2:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        stop.set()

    t = threading.Thread(target=script, daemon=True)
    t.start()
    summary = p.run()
    t.join(5)
    seq = out.seq()
    # live, a verdict, the freeze is noticed and the verdict withdrawn at once, frames again, a fresh verdict
    assert seq == ["live", "REAL", "stale", "UNKNOWN", "live", "REAL"], seq
    stale = next(r for r in out.recs if r["type"] == "source" and r["state"] == "stale")
    assert "no frame for" in stale["message"] and "stale after 1.0 s" in stale["message"]
    unknown = next(r for r in out.recs if r["type"] == "state" and r["state"] == "UNKNOWN")
    assert unknown["previous"] == "REAL" and unknown["score"] is None and unknown["reason"] == "stale"
    statuses = [r for r in out.recs if r["type"] == "status" and r["t"] > stale["t"] and r["t"] < unknown["t"] + 0.5]
    assert all(r["state"] == "UNKNOWN" for r in statuses)
    assert summary.streams["frozen"]["state"] == "REAL"


class Dead(Source):
    kind, live = "rtsp", True

    def __init__(self, name: str) -> None:
        super().__init__(f"rtsp://10.255.255.1/{name}", name)

    def open(self) -> None:
        raise SourceError(f"{self.uri}: connection refused (test)")

    def read(self):  # pragma: no cover - never opened
        return None

    def close(self) -> None:
        pass


def test_max_retries_makes_a_dead_live_source_fail(bright_onnx):
    out = Records()
    s = Pipeline([Dead("a"), Dead("b")], load_runner(bright_onnx), WatchConfig(max_retries=1, duration_s=120),
                 sinks=[out]).run()
    assert s.stop_reason == "all sources ended"
    states = [(r["stream"], r["state"]) for r in out.recs if r["type"] == "source"]
    for cam in ("a", "b"):
        assert [st for c, st in states if c == cam] == ["connecting", "reconnecting", "failed"]
    assert "gave up after 1 retries" in next(r["message"] for r in out.recs if r.get("state") == "failed")


def test_cli_exits_3_when_every_source_failed(tmp_path, bright_onnx, capsys):
    from fakewatch.cli import main

    rc = main(["watch", "rtsp://127.0.0.1:9/none", "--model", str(bright_onnx), "--max-retries", "0",
               "--no-live", "--duration", "120"])
    err = capsys.readouterr().err
    assert rc == EXIT_ALL_SOURCES_FAILED and "every source failed" in err


def test_a_camera_can_have_its_own_max_retries(bright_onnx):
    from fakewatch.streams.backoff import Backoff

    out = Records()
    strict = Dead("strict")
    strict.backoff = Backoff(initial_s=0.01, max_retries=0)     # what `cameras.strict.max_retries: 0` sets
    Pipeline([strict, Dead("patient")], load_runner(bright_onnx), WatchConfig(max_retries=2, duration_s=120),
             sinks=[out]).run()
    states = [(r["stream"], r["state"]) for r in out.recs if r["type"] == "source"]
    assert [st for c, st in states if c == "strict"] == ["connecting", "failed"]
    assert [st for c, st in states if c == "patient"] == ["connecting", "reconnecting", "reconnecting", "failed"]
