"""End to end: generated videos, a controlled-score model, multi-stream batching, failures, shutdown, RTSP."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fakewatch.runtime.alerts import ALERT_SCHEMA, JsonlSink
from fakewatch.runtime.backends import load_runner
from fakewatch.runtime.decision import FAKE, REAL, DecisionConfig
from fakewatch.runtime.pipeline import Pipeline, WatchConfig
from fakewatch.streams import open_source
from fakewatch.streams.source import RawRead, Source, SourceError

from .conftest import write_video

jsonschema = pytest.importorskip("jsonschema")
REPO = Path(__file__).resolve().parents[2]


def read_jsonl(path: Path) -> list[dict]:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    for r in recs:
        jsonschema.validate(r, ALERT_SCHEMA)
    return recs


class TruthFile(Source):
    """A file source that knows which media-time range is 'fake' (like the demo source's truth)."""

    kind, live = "file", False

    def __init__(self, path: Path, fake_from: float, fake_to: float) -> None:
        super().__init__(str(path), None)
        self.inner = open_source(str(path), pace=False)
        self.lossless = True
        self.range = (fake_from, fake_to)

    def open(self) -> None:
        self.inner.open()

    def read(self) -> RawRead | None:
        raw = self.inner.read()
        if raw is not None:
            raw.truth = {"fake": bool(self.range[0] <= raw.source_ts < self.range[1])}
        return raw

    def close(self) -> None:
        self.inner.close()


class Broken(Source):
    """Fails on open (like a file OpenCV cannot decode after all) or after ``good`` frames."""

    kind, live = "file", False

    def __init__(self, name: str, good: int = 0) -> None:
        super().__init__(name, None)
        self.good, self.n = good, 0
        self.lossless = True          # every frame reaches the pipeline

    def open(self) -> None:
        if self.good == 0:
            raise SourceError(f"{self.uri}: cannot open (test)")

    def read(self) -> RawRead | None:
        self.n += 1
        if self.n > self.good:
            raise SourceError(f"{self.uri}: decoder error (test)")
        return RawRead(np.full((48, 64, 3), 40, np.uint8), source_ts=self.n / 25)

    def close(self) -> None:
        pass


def test_cli_end_to_end_on_a_generated_video(tmp_path, tiny_onnx, capsys):
    from fakewatch.cli import main

    video = write_video(tmp_path / "clip.mp4", frames=30, fps=25.0)
    out = tmp_path / "alerts.jsonl"
    rc = main(["watch", str(video), "--model", str(tiny_onnx), "--json", str(out), "--status-interval", "0.25",
               "--window", "10f", "--no-live"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "fakewatch watch summary" in err and "end-to-end latency" in err and "ended: all sources ended" in err
    recs = read_jsonl(out)
    kinds = [r["type"] for r in recs]
    assert kinds[-1] == "summary" and "status" in kinds and "state" in kinds
    assert [r["state"] for r in recs if r["type"] == "source"][-1] == "eof"
    first_state = next(r for r in recs if r["type"] == "state")
    assert first_state["previous"] == "UNKNOWN" and first_state["state"] in (REAL, FAKE)
    assert first_state["latency_ms"]["total"] > 0 and "inference" in first_state["latency_ms"]
    summary = recs[-1]
    (stream,) = summary["streams"].values()
    assert stream["frames"] + stream["dropped"] == 30          # paced file: every frame processed or counted
    for stage in ("dequeue", "preprocess", "batch", "inference", "decision", "alert", "total"):
        p = summary["latency_ms"][stage]
        assert 0 <= p["p50"] <= p["p90"] <= p["p99"]
    assert summary["batches"]["count"] >= stream["frames"] // 1 - 0 and summary["backend"] == "onnxruntime"


def test_fake_alert_starts_and_ends_within_hysteresis_bounds(tmp_path, bright_onnx):
    fps, t1, t2 = 25.0, 2.0, 4.0
    video = write_video(tmp_path / "bright.mp4", frames=150, fps=fps,
                        level=lambda i: 230 if t1 <= i / fps < t2 else 40)
    W, D, enter, leave = 0.8, 0.4, 0.6, 0.4
    cfg = WatchConfig(decision=DecisionConfig(window=W, window_unit="s", aggregation="mean", enter=enter,
                                              leave=leave, min_duration_s=D),
                      keep_frame_records=1000, status_interval_s=0)
    summary = Pipeline([TruthFile(video, t1, t2)], load_runner(bright_onnx), cfg).run()
    states = [e for e in summary.events if e["type"] == "state"]
    assert [(e["previous"], e["state"]) for e in states] == [("UNKNOWN", REAL), (REAL, FAKE), (FAKE, REAL)]
    fake_on, fake_off = states[1]["stream_time"], states[2]["stream_time"]
    tol = 3 / fps
    # the window mean reaches `enter` once that share of the window is bright, then the change must hold D
    assert abs(fake_on - (t1 + enter * W + D)) <= tol, fake_on
    assert abs(fake_off - (t2 + (1 - leave) * W + D)) <= tol, fake_off
    frames = summary.frame_records
    assert len(frames) == 150 and all(f["truth"] is not None for f in frames)
    wrong = sum((f["state"] == FAKE) != f["truth"]["fake"] for f in frames if f["state"] != "UNKNOWN")
    lag = (enter * W + D) + ((1 - leave) * W + D)     # decisions trail the truth on both edges, nowhere else
    assert (lag - 2 * tol) * fps <= wrong <= (lag + 2 * tol) * fps


def test_four_streams_are_batched_together(tmp_path, bright_onnx):
    n = 25
    paths = [write_video(tmp_path / f"s{i}.mp4", frames=n, fps=25.0, level=lambda j, i=i: 30 + 40 * i)
             for i in range(4)]

    def run(max_wait_ms: float):
        # paced like live cameras: each source delivers at 25 fps from its own reader thread
        cfg = WatchConfig(batch=4, max_wait_ms=max_wait_ms, status_interval_s=0)
        return Pipeline([open_source(str(p)) for p in paths], load_runner(bright_onnx), cfg).run()

    s = run(200.0)
    assert sum(k * v for k, v in s.batch_sizes.items()) + sum(st["dropped"] for st in s.streams.values()) == 4 * n
    # batches fill up across cameras: per-stream batching would average 1 stream per batch. How evenly the four
    # interleave depends on thread scheduling (a loaded machine may put two frames of one camera in a batch), so
    # the bounds are loose; no wall-clock latency is asserted here: that is a benchmark figure (benchmarks/e2e.py)
    assert s.batch_reasons.get("full", 0) >= 0.6 * len(s.batch_log), s.batch_log
    assert np.mean([log[1] for log in s.batch_log]) >= 2.0, s.batch_log


def test_a_dead_source_does_not_make_every_batch_wait(tmp_path, bright_onnx):
    paths = [write_video(tmp_path / f"s{i}.mp4", frames=25, fps=25.0) for i in range(3)]
    sources = [Broken("dead-camera")] + [open_source(str(p)) for p in paths]
    cfg = WatchConfig(batch=4, max_wait_ms=300.0, status_interval_s=0)
    s = Pipeline(sources, load_runner(bright_onnx), cfg).run()
    # once the dead source is reported, a batch is complete with one frame from each of the 3 live sources: no
    # batch waits out max_wait for a fourth frame that never comes (counted, not timed)
    assert s.batch_sizes.get(3, 0) >= 0.6 * sum(s.batch_sizes.values())
    assert s.batch_reasons.get("timeout", 0) <= 0.1 * sum(s.batch_sizes.values()) + 2


def test_a_failing_stream_is_an_event_and_the_others_keep_running(tmp_path, bright_onnx):
    video = write_video(tmp_path / "ok.mp4", frames=40, fps=25.0)
    sink_path = tmp_path / "a.jsonl"
    sources = [Broken("broken-at-open"), open_source(str(video), pace=False), Broken("dies-later", good=5)]
    s = Pipeline(sources, load_runner(bright_onnx), WatchConfig(status_interval_s=0),
                 sinks=[JsonlSink(sink_path)]).run()
    recs = read_jsonl(sink_path)
    failed = {r["stream"]: r["message"] for r in recs if r["type"] == "source" and r["state"] == "failed"}
    assert set(failed) == {"broken-at-open", "dies-later"} and "decoder error" in failed["dies-later"]
    assert s.streams[str(video)]["frames"] == 40 and s.streams["dies-later"]["frames"] == 5
    assert s.stop_reason == "all sources ended"


def test_duration_ends_a_run_of_an_endless_stream(tmp_path, bright_onnx):
    video = write_video(tmp_path / "loop.mp4", frames=10, fps=25.0)
    s = Pipeline([open_source(str(video), loop=True)], load_runner(bright_onnx),
                 WatchConfig(duration_s=0.6, status_interval_s=0.2)).run()
    # an endless source ends by duration, not by EOF; no lower bound on speed (the machine may be loaded)
    assert s.stop_reason.startswith("duration") and s.duration_s >= 0.6
    (st,) = s.streams.values()
    assert st["fps"] <= 25 * 1.3                               # paced at 25 fps: never faster than the file
    assert st["frames"] <= 25 * s.duration_s * 1.3 + 2


def test_sigterm_stops_flushes_and_exits_zero(tmp_path, bright_onnx):
    video = write_video(tmp_path / "loop.mp4", frames=10, fps=25.0)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "fakewatch", "watch", str(video), "--loop", "--model",
                             str(bright_onnx), "--json", str(out), "--no-live"],
                            cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60     # generous: the machine may be shared; nothing below asserts on speed
        while time.monotonic() < deadline and (not out.exists() or '"state"' not in out.read_text()) \
                and proc.poll() is None:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _stdout, err = proc.communicate(timeout=60)
    finally:                                 # never leave a looping watcher behind, whatever failed above
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "SIGTERM, stopping" in err and "fakewatch watch summary" in err and "stopped (signal)" in err
    assert f"model: {bright_onnx.name} on onnxruntime" in err
    recs = read_jsonl(out)
    assert recs[-1]["type"] == "summary" and recs[-1]["stop_reason"] == "stopped (signal)"


def test_cli_errors_are_one_line(tmp_path, tiny_onnx, capsys, monkeypatch):
    from fakewatch.cli import main
    from fakewatch.runtime import watch_cli

    monkeypatch.setattr(watch_cli, "DEMO_MODEL", tmp_path / "absent" / "demo_model.onnx")
    assert main(["watch", "--no-live", "--duration", "0.1"]) == 1
    assert "pass --model PATH" in capsys.readouterr().err
    assert main(["watch", "x.mp4", "--model", str(tiny_onnx), "--window", "2 parsecs"]) == 1
    assert "--window '2 parsecs'" in capsys.readouterr().err
    assert main(["watch", "--print-schema"]) == 0
    assert json.loads(capsys.readouterr().out)["oneOf"]
    assert main(["watch", "x.mp4", "--model", str(tiny_onnx), "--streams", "many"]) == 1
    assert "--streams must be a whole number or 'auto', got 'many'" in capsys.readouterr().err


def test_cli_streams_shard_multi_source_batches(tmp_path, tiny_onnx):
    from fakewatch.cli import main

    video = write_video(tmp_path / "clip.mp4", frames=20, fps=25.0)
    out = tmp_path / "alerts.jsonl"
    rc = main(["watch", str(video), str(video), "--model", str(tiny_onnx), "--streams", "2", "--batch", "2",
               "--json", str(out), "--status-interval", "0", "--no-live", "--no-pace", "--frames"])
    assert rc == 0
    recs = read_jsonl(out)
    summary = recs[-1]
    assert summary["type"] == "summary" and len(summary["streams"]) == 2
    assert all(s["frames"] == 20 for s in summary["streams"].values())   # --no-pace: every frame scored
    probs = [r for r in recs if r["type"] == "frame"]
    assert len(probs) == 40


@pytest.mark.rtsp
def test_rtsp_end_to_end(runtime_rtsp_server, tiny_onnx, tmp_path):
    out = tmp_path / "rtsp.jsonl"
    url = runtime_rtsp_server.url()
    s = Pipeline([open_source(url)], load_runner(tiny_onnx),
                 WatchConfig(duration_s=4.0, status_interval_s=0.5), sinks=[JsonlSink(out)]).run()
    recs = read_jsonl(out)
    (st,) = s.streams.values()
    live_t = next(r["t"] for r in recs if r["type"] == "source" and r["state"] == "live")
    assert st["frames"] >= 0.5 * 25 * (4.0 - live_t) and st["latency_ms"]["total"]["p50"] > 0
    assert any(r["type"] == "source" and r["state"] == "live" for r in recs)
    assert any(r["type"] == "state" for r in recs) and recs[-1]["type"] == "summary"


class HostDeviceRunner:
    """The TensorRT runner's device-input protocol (preprocess_on_device + infer_prepared), served on the host.

    Preprocessing is the CUDA kernel's exact math in NumPy (fakewatch.runtime.cuda_preprocess.reference_bilinear) and
    inference is ONNX Runtime, so this checks the pipeline's GPU wiring (frames + boxes flattened per batch, no host
    tensor), not the GPU.
    """

    accepts_device_input = True

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def preprocess_on_device(self, images, boxes) -> int:
        from fakewatch.runtime.cuda_preprocess import reference_bilinear

        self._staged = reference_bilinear(images, boxes, self.inner.spec)
        return len(images)

    def infer_prepared(self, n: int) -> np.ndarray:
        self.calls.append(n)
        return self.inner.infer(self._staged[:n])


def test_device_input_runner_gets_frames_and_boxes_and_matches_host_path(tmp_path, bright_onnx):
    fps = 25.0
    video = write_video(tmp_path / "v.mp4", frames=40, fps=fps, level=lambda i: 40 + 5 * i)
    cfg = WatchConfig(keep_frame_records=100, status_interval_s=0)
    host = Pipeline([open_source(str(video), pace=False)], load_runner(bright_onnx), cfg).run()
    dev_runner = HostDeviceRunner(load_runner(bright_onnx))
    dev = Pipeline([open_source(str(video), pace=False)], dev_runner, cfg).run()
    assert sum(dev_runner.calls) == 40 and dev.batch_sizes == dict(Counter(dev_runner.calls))
    a = np.array([f["frame_score"] for f in host.frame_records])
    b = np.array([f["frame_score"] for f in dev.frame_records])
    assert a.shape == b.shape == (40,)
    assert np.abs(a - b).max() < 0.02  # kernel math vs cv2 fixed-point resize: < 1 uint8 step of input
    assert all(r["latency_ms"]["preprocess"] >= 0 and r["latency_ms"]["batch"] >= 0 for r in dev.frame_records)


def test_cli_openvino_backend_watches_two_sources(tmp_path, tiny_onnx):
    pytest.importorskip("openvino")
    from fakewatch.cli import main

    video = write_video(tmp_path / "clip.mp4", frames=12, fps=25.0)
    out = tmp_path / "alerts.jsonl"
    rc = main(["watch", str(video), str(video), "--model", str(tiny_onnx), "--backend", "openvino", "--streams",
               "2", "--batch", "2", "--json", str(out), "--status-interval", "0", "--no-live", "--no-pace",
               "--frames"])
    assert rc == 0
    recs = read_jsonl(out)
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["backend"] == "openvino"
    assert all(s["frames"] == 12 for s in summary["streams"].values())
    assert len([r for r in recs if r["type"] == "frame"]) == 24
