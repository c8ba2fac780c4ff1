"""The watch loop's in-flight window (runtime/inflight.py) with a runner that answers asynchronously.

The runner here is the real ONNX Runtime runner behind a thread pool whose answers are held back on purpose (each
batch waits until the next one was sent), the situation the window exists for: a batch on a remote server while the
loop closes the next. The real Triton server runs the same path in tests/runtime/test_triton_server.py.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from fakewatch.runtime.backends import load_runner
from fakewatch.runtime.backends.base import BackendUnavailable
from fakewatch.runtime.inflight import InFlight
from fakewatch.runtime.pipeline import Pipeline, WatchConfig
from fakewatch.streams import open_source

from .conftest import write_video


class HeldBackRunner:
    """ONNX Runtime with ``infer_async``/``wait``: batch k answers only once batch k+1 was sent (or at the end)."""

    def __init__(self, model, fail_every: int = 0) -> None:
        self.inner = load_runner(model, "onnxruntime")
        self.name, self.spec, self.artifact, self.max_batch = "held", self.inner.spec, self.inner.artifact, None
        self.pool = ThreadPoolExecutor(2)
        self.gates: list[threading.Event] = []
        self.sent = 0
        self.fail_every = fail_every
        self.is_active = False

    def activate(self):
        self.inner.activate()
        self.is_active = True
        return self

    def deactivate(self) -> None:
        for g in self.gates:
            g.set()
        self.pool.shutdown()
        self.inner.deactivate()
        self.is_active = False

    def infer(self, batch):                       # not used with a window > 1
        raise AssertionError("the pipeline should have sent this batch asynchronously")

    def infer_async(self, batch) -> Future:
        if self.gates:
            self.gates[-1].set()                  # the previous batch may answer now that this one is out
        gate = threading.Event()
        self.gates.append(gate)
        self.sent += 1
        fail = self.fail_every and self.sent % self.fail_every == 0
        x = batch.copy()

        def run():
            gate.wait(2.0)                        # (the last batch is released by the end-of-run wait, or times out)
            if fail:
                raise BackendUnavailable("server restarting (test)")
            return self.inner.infer(x)
        return self.pool.submit(run)

    def wait(self, fut: Future):
        if self.gates:
            self.gates[-1].set()                  # the loop waits for everything: nothing else will be sent
        return fut.result(timeout=10)


def _run(video, runner, **cfg):
    return Pipeline([open_source(str(video), pace=False)], runner,
                    WatchConfig(status_interval_s=0, keep_frame_records=500, **cfg)).run()


def test_window_keeps_two_batches_in_flight_and_decides_in_order(tmp_path, bright_onnx):
    video = write_video(tmp_path / "v.mp4", frames=60, fps=25.0, level=lambda i: 40 + 3 * i)
    sync = _run(video, load_runner(bright_onnx, "onnxruntime"), in_flight=1)
    runner = HeldBackRunner(bright_onnx)
    pipe = Pipeline([open_source(str(video), pace=False)], runner,
                    WatchConfig(status_interval_s=0, keep_frame_records=500))        # auto: 2 for async runners
    res = pipe.run()
    assert pipe.window is not None and pipe.window.depth == 2 and pipe.window.max_seen == 2
    assert len(pipe.window) == 0                      # everything sent was decided before the run ended
    seqs = [r["seq"] for r in res.frame_records]
    assert seqs == sorted(seqs) and len(seqs) == 60 and runner.sent == 60
    # same frames, same scores as one batch at a time
    a = {r["seq"]: r["frame_score"] for r in sync.frame_records}
    b = {r["seq"]: r["frame_score"] for r in res.frame_records}
    assert a.keys() == b.keys() and max(abs(a[k] - b[k]) for k in a) <= 1e-6
    assert all(r["latency_ms"]["inference"] >= 0 for r in res.frame_records)


def test_lost_batches_in_the_window_are_dropped_not_fatal(tmp_path, bright_onnx, capsys):
    video = write_video(tmp_path / "v.mp4", frames=40, fps=25.0, level=lambda i: 200)
    pipe = Pipeline([open_source(str(video), pace=False)], HeldBackRunner(bright_onnx, fail_every=4),
                    WatchConfig(status_interval_s=0, keep_frame_records=500))
    res = pipe.run()
    assert pipe.backend_failures == 10 and len(res.frame_records) == 30
    assert "server restarting (test)" in capsys.readouterr().err


def test_window_rules():
    w = InFlight(2, clock=lambda: 1.0)
    f1, f2 = Future(), Future()
    w.push("a", f1)
    w.push("b", f2)
    assert w.full and list(w.ready()) == []
    with pytest.raises(RuntimeError, match="window full"):
        w.push("c", None)
    f2.set_result(2)                                  # the newer answer first: still nothing ready (order kept)
    assert list(w.ready()) == []
    f1.set_result(1)
    assert [s.batch for s in w.ready()] == ["a", "b"] and len(w) == 0
    with pytest.raises(ValueError):
        InFlight(0, clock=lambda: 0.0)


def test_in_flight_needs_an_async_runner(tmp_path, bright_onnx):
    video = write_video(tmp_path / "v.mp4", frames=5, fps=25.0, level=lambda i: 40)
    with pytest.raises(ValueError, match="only the triton backend keeps several batches in flight"):
        _run(video, load_runner(bright_onnx, "onnxruntime"), in_flight=2)
