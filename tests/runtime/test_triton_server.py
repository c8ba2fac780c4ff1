"""The triton backend against a real Triton server (`fakewatch serve`, PyTriton's tritonserver) on 127.0.0.1.

* same logits as in-process ONNX Runtime (max abs diff <= 1e-5), contract read from the server's config;
* two `fakewatch watch` processes: Triton's own metrics show their requests merged into shared batches;
* the server SIGKILLed and restarted mid-run: both watch processes keep running, count the lost frames as dropped
  and raise alerts again within 10 s of the server being ready.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fakewatch.core.triton import parse_metrics

from .conftest import write_video
from .triton_server import new_server

DEMO = Path(__file__).resolve().parents[2] / "runtime" / "assets" / "demo" / "demo_model.onnx"


def _watch(video: Path, url: str, model: str, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fakewatch", "watch", str(video), "--loop", "--backend", "triton", "--triton-url",
           url, "--triton-model", model, "--no-live", "--json", str(out), "--frames", "--status-interval", "0",
           "--window", "0.4s", "--min-duration", "0.2", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:   # the writer may be mid-line
            pass
    return out


def _wait_for(cond, timeout_s: float, what: str, procs=()) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return time.time()
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a watch process exited early ({p.returncode}): {p.stdout.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def _stop(procs) -> list[str]:
    outs = []
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        outs.append(out)
        assert p.returncode == 0, f"watch exited {p.returncode}:\n{out[-3000:]}"
    return outs


@pytest.fixture(scope="module")
def shared_server(bright_onnx, tmp_path_factory):
    """One server for the demo model and the brightness model (20 ms batching window so clients can merge)."""
    tmp = tmp_path_factory.mktemp("triton")
    servers = {"demo": new_server(DEMO, "deepfake", tmp, "--max-batch", "8"),
               "bright": new_server(bright_onnx, "bright", tmp, "--max-batch", "8", "--max-queue-delay-us", "20000")}
    try:
        for s in servers.values():
            s.start()
        yield servers
    finally:
        for s in servers.values():
            s.stop()


def test_triton_logits_match_in_process_onnxruntime(shared_server):
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.backends.triton_runner import TritonRunner

    server = shared_server["demo"]
    remote = TritonRunner.connect(server.url, "deepfake")
    assert remote.spec == load_runner(DEMO).spec          # the contract came from the server's config
    rng = np.random.default_rng(0)
    with load_runner(DEMO, "onnxruntime") as local, remote:
        assert remote.max_batch == 8
        assert "in Triton's python backend, max batch 8" in shared_server["demo"].tail(200)   # the default server
        for n in (8, 3, 1):
            x = rng.standard_normal((n, 3, 112, 112)).astype(np.float32)
            a, b = local.infer(x), remote.infer(x)
            assert b.shape == (n, 1) and np.max(np.abs(a - b)) <= 1e-5
        with pytest.raises(Exception, match="exceeds this triton model's max batch 8"):
            remote.infer(np.zeros((9, 3, 112, 112), np.float32))
        # a loopback server: input batches went through system shared memory, registered on the server
        assert remote.shm_note.startswith("on (3 x 1.2 MB)"), remote.shm_note
        status = remote._client.get_system_shared_memory_status(as_json=True)
        assert remote._slots.name in str(status)
    with TritonRunner.connect(server.url, "deepfake", shm="off") as plain, load_runner(DEMO, "onnxruntime") as local:
        x = rng.standard_normal((5, 3, 112, 112)).astype(np.float32)
        assert plain._slots is None and np.max(np.abs(local.infer(x) - plain.infer(x))) <= 1e-5
    timing = remote.server_timing                           # Triton's own statistics, read on deactivate
    assert timing["requests"] >= 3 and timing["compute_infer_ms"] > 0 and timing["queue_ms"] >= 0


def test_requests_on_one_stream_give_the_same_logits(shared_server):
    """stream=True (the default): every request a message on one gRPC bidirectional stream, answers matched by
    request id; stream=False (one gRPC call each) gives the same."""
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.backends.triton_runner import TritonRunner

    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((n, 3, 112, 112)).astype(np.float32) for n in (8, 2, 5, 8, 1, 7)]
    with TritonRunner.connect(shared_server["demo"].url, "deepfake", stream=True) as remote, \
            load_runner(DEMO, "onnxruntime") as local:
        futures = [remote.infer_async(x) for x in batches[:2]]            # two in flight on the stream
        for x in batches[2:]:
            futures.append(remote.infer_async(x))
            remote.wait(futures[-3])
        got = [remote.wait(f) for f in futures]
        stream = remote._stream
        assert stream is not None and not stream.broken and stream.in_flight == 0
        for x, y in zip(batches, got):
            assert y.shape == (len(x), 1) and np.max(np.abs(local.infer(x) - y)) <= 1e-5
        with TritonRunner.connect(shared_server["demo"].url, "deepfake", stream=False) as calls:
            futures = [calls.infer_async(x) for x in batches[:2]]
            assert all(np.array_equal(calls.wait(f), y) for f, y in zip(futures, got)) and calls._stream is None
    assert remote._stream is None and remote.server_timing["requests"] >= len(batches)


@pytest.mark.parametrize("stream", [False, True], ids=["calls", "stream"])
def test_runner_survives_a_killed_server(bright_onnx, tmp_path, stream):
    """A SIGKILLed server fails the batches in flight with BackendUnavailable (never a hang or a crash), every retry
    on a fresh channel (and stream) leaves no thread behind; after the restart the same runner answers again, and
    the outage is on record."""
    import threading

    from fakewatch.runtime.backends.base import BackendUnavailable
    from fakewatch.runtime.backends.triton_runner import TritonRunner

    server = new_server(bright_onnx, "bright", tmp_path, "--max-batch", "8")
    server.start()
    x = np.full((4, 3, 32, 32), 0.5, np.float32)
    try:
        with TritonRunner.connect(server.url, "bright", stream=stream, timeout_s=3.0, stats_interval_s=0,
                                  backoff_s=(0.0, 0.0)) as r:    # no backoff: every failed batch retries afresh
            before = r.infer(x)
            threads = threading.active_count()
            in_flight = [r.infer_async(x) for _ in range(2)]
            server.kill()
            outcomes = []
            for fut in in_flight:
                try:
                    outcomes.append(r.wait(fut))
                except BackendUnavailable:
                    outcomes.append(None)
            failed = 0
            for _ in range(20):                      # while it is down every batch fails, none hangs
                try:
                    r.infer(x)
                except BackendUnavailable:
                    failed += 1
            assert failed == 20
            assert threading.active_count() <= threads + 1, [t.name for t in threading.enumerate()]
            server.start()
            answers = []

            def answered() -> bool:
                try:
                    answers.append(r.infer(x))
                    return True
                except BackendUnavailable:
                    return False

            _wait_for(answered, 60, "an answer after the restart")
            assert np.max(np.abs(answers[-1] - before)) <= 1e-5
            assert r.outages and r.outages[-1].up_at is not None
            assert r.outages[-1].batches_lost >= 20 + sum(o is None for o in outcomes)
            if stream:
                assert r._stream is not None and not r._stream.broken
    finally:
        server.stop()


def test_pytriton_server_gives_the_same_logits_and_contract(tmp_path):
    """`--server pytriton` (PyTriton's proxy in front of the runner) answers exactly like the default python
    backend and in-process ONNX Runtime."""
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.backends.triton_runner import TritonRunner

    server = new_server(DEMO, "viapytriton", tmp_path, "--max-batch", "8", "--server", "pytriton")
    try:
        server.start()
        assert "on onnxruntime, max batch 8" in server.tail(200)          # PyTriton's own ready line
        rng = np.random.default_rng(1)
        with load_runner(DEMO, "onnxruntime") as local, TritonRunner.connect(server.url, "viapytriton") as remote:
            assert remote.spec == local.spec and remote.max_batch == 8
            for n in (8, 2):
                x = rng.standard_normal((n, 3, 112, 112)).astype(np.float32)
                assert np.max(np.abs(local.infer(x) - remote.infer(x))) <= 1e-5
    finally:
        server.stop()


def test_unknown_model_and_dead_server_errors(shared_server):
    from fakewatch.runtime.backends.base import BackendError
    from fakewatch.runtime.backends.triton_runner import TritonRunner

    with pytest.raises(BackendError, match="has no model 'nope'"):
        TritonRunner.connect(shared_server["demo"].url, "nope")
    from .triton_server import free_ports

    with pytest.raises(BackendError, match="did not answer.*fakewatch serve"):
        TritonRunner.connect(f"grpc://127.0.0.1:{free_ports(1)[0]}", "deepfake", connect_timeout_s=1.0)


def test_two_watch_processes_share_batches(shared_server, tmp_path):
    server = shared_server["bright"]
    before = parse_metrics(server.metrics_text())
    videos = [write_video(tmp_path / f"cam{i}.mp4", frames=100, fps=25.0, level=lambda j, i=i: 40 + 150 * i)
              for i in range(2)]
    outs = [tmp_path / f"w{i}.jsonl" for i in range(2)]
    procs = [_watch(v, server.url, "bright", o) for v, o in zip(videos, outs)]
    try:
        _wait_for(lambda: all(sum(r["type"] == "frame" for r in _records(o)) >= 60 for o in outs), 120,
                  "60 frames from each client", procs)
    finally:
        logs = _stop(procs)
    after = parse_metrics(server.metrics_text())
    requests = after[("nv_inference_request_success", "bright")] - before.get(("nv_inference_request_success",
                                                                                 "bright"), 0)
    execs = after[("nv_inference_exec_count", "bright")] - before.get(("nv_inference_exec_count", "bright"), 0)
    frames = [sum(r["type"] == "frame" for r in _records(o)) for o in outs]
    # each client sends one request per frame and waits for it: only requests of *different* clients can share
    # an execution, so fewer executions than requests means the two clients' requests were merged
    assert requests >= sum(frames) - 2, (requests, frames)
    assert execs < requests, (execs, requests)
    states = [{r["state"] for r in _records(o) if r["type"] == "frame"} for o in outs]
    assert "REAL" in states[0] and "FAKE" in states[1]     # dark camera real, bright camera fake: real results
    assert all("on triton" in log for log in logs)


def test_server_killed_and_restarted_clients_recover(bright_onnx, tmp_path):
    server = new_server(bright_onnx, "bright", tmp_path, "--max-batch", "8")
    # dark and bright halves: the decision flips REAL <-> FAKE every 2 s, so alerts keep coming while it runs
    videos = [write_video(tmp_path / f"cam{i}.mp4", frames=100, fps=25.0,
                          level=lambda j, i=i: 40 if ((j + 50 * i) // 50) % 2 == 0 else 230) for i in range(2)]
    outs = [tmp_path / f"w{i}.jsonl" for i in range(2)]
    server.start()
    procs = [_watch(v, server.url, "bright", o) for v, o in zip(videos, outs)]
    try:
        _wait_for(lambda: all(any(r["type"] == "state" for r in _records(o)) for o in outs), 120,
                  "a first alert from each client", procs)
        server.kill()
        killed = time.time()
        time.sleep(2.0)                      # clients run against a dead server meanwhile
        assert all(p.poll() is None for p in procs), "a watch process died with the server"
        restarting = time.time()             # from here the server may answer before wait_ready sees it
        ready = server.start()
        back = [_wait_for(lambda o=o: any(r["type"] == "frame" and r["ts"] > ready for r in _records(o)), 60,
                          "frames after the restart", procs) for o in outs]
        _wait_for(lambda: all(any(r["type"] == "state" and r["ts"] > ready for r in _records(o)) for o in outs),
                  60, "alerts after the restart", procs)
    finally:
        logs = _stop(procs)
        server.stop()
    for o, log in zip(outs, logs):
        recs = _records(o)
        after = [r["ts"] for r in recs if r["type"] == "frame" and r["ts"] > ready]
        gap = [r["ts"] for r in recs if r["type"] == "frame" and killed < r["ts"] < restarting]
        assert after, "no frames after the restart"   # how fast: a benchmark figure (docs/scale-out.md), not a test
        assert len(gap) <= 3                 # nothing decided while the server was dead (2 s of frames offered)
        summary = [r for r in recs if r["type"] == "summary"][-1]
        assert sum(st["dropped"] for st in summary["streams"].values()) > 0   # the lost batches' frames
        assert "failed a request" in log     # one clear line per outage on stderr
    print("recovery after ready (s):", [round(b - ready, 2) for b in back], file=sys.stderr)


def test_server_timing_from_triton_statistics(shared_server, bright_onnx, tmp_path):
    """Triton's own queue/compute times reach the runner and the watch pipeline's latency stages."""
    from fakewatch.runtime.backends.triton_runner import TritonRunner
    from fakewatch.runtime.pipeline import Pipeline, WatchConfig
    from fakewatch.streams import open_source

    server = shared_server["demo"]
    runner = TritonRunner.connect(server.url, "deepfake", stats_interval_s=0.05)
    x = np.random.default_rng(1).standard_normal((8, 3, 112, 112)).astype(np.float32)
    with runner:
        assert runner.server_stage_ms() == {}              # nothing measured before the first batch
        round_trips = []
        for _ in range(20):
            t0 = time.perf_counter()
            runner.infer(x)
            round_trips.append((time.perf_counter() - t0) * 1e3)
            time.sleep(0.06)                               # let the sampler take its next interval
        srv = runner.server_stage_ms()
        latest = dict(runner._sampler.latest)
    assert set(srv) == {"server_queue", "server_compute"}
    # one request at a time from this client only: the server's share of it cannot exceed the whole round trip
    assert 0 < srv["server_compute"] <= max(round_trips) and 0 <= srv["server_queue"] <= max(round_trips)
    assert srv["server_queue"] + srv["server_compute"] <= max(round_trips)
    assert latest["requests"] >= 1 and latest["executions"] >= 1

    video = write_video(tmp_path / "cam.mp4", frames=60, fps=25.0, level=lambda j: 200)
    remote = TritonRunner.connect(shared_server["bright"].url, "bright", stats_interval_s=0.05)
    summary = Pipeline([open_source(str(video), pace=True)], remote,
                       WatchConfig(status_interval_s=0, keep_frame_records=100)).run()
    lat = summary.overall["latency_ms"]
    assert summary.overall["frames"] >= 30
    assert {"server_queue", "server_compute"} <= set(lat), lat
    # the server's part sits inside the client's inference stage (histogram buckets: ~6 % each)
    assert lat["server_compute"]["p50"] <= lat["inference"]["p99"] * 1.07
    assert lat["server_queue"]["p50"] <= lat["inference"]["p99"] * 1.07
    recs = [r for r in summary.frame_records if "server_compute" in r["latency_ms"]]
    assert recs and all(r["latency_ms"]["total"] >= r["latency_ms"]["inference"] for r in recs)
    assert "on the server (Triton statistics" in summary.text()


def test_face_detector_served_by_triton_finds_the_same_faces(tmp_path):
    """`--face-detector grpc://HOST:PORT/NAME`: BlazeFace on the server, decoding from its config; same boxes as the
    local detector, and a watch run with both models on the server decides frames."""
    from fakewatch.runtime.backends.triton_runner import TritonRunner
    from fakewatch.runtime.face_detectors import BUNDLED, make_detector
    from fakewatch.runtime.pipeline import Pipeline, WatchConfig
    from fakewatch.streams import open_source
    from fakewatch.streams.demo import find_clip, load_clip

    frames, _fps = load_clip(str(find_clip()))
    server = new_server(BUNDLED["blazeface-short"], "face", tmp_path, "--max-batch", "4")
    classifier = new_server(DEMO, "deepfake", tmp_path, "--max-batch", "8")
    server.start()
    classifier.start()
    try:
        local = make_detector("blazeface-short")
        remote = make_detector(f"{server.url}/face")
        try:
            assert remote.size == 128 and remote.alignment == local.alignment     # decoding came from the config
            picks = [frames[i] for i in range(0, len(frames), max(1, len(frames) // 4))][:4]
            a, b = local.detect_batch(picks), remote.detect_batch(picks)
        finally:
            local.close()
            remote.close()
        assert sum(len(f) for f in a) >= 4 and [len(f) for f in a] == [len(f) for f in b]
        assert max(abs(x - y) for fa, fb in zip(a, b) for da, db in zip(fa, fb) for x, y in zip(da, db)) <= 1e-3
        with pytest.raises(Exception, match="not a face detector"):
            make_detector(f"{classifier.url}/deepfake")
        with pytest.raises(ValueError, match="grpc://HOST:PORT/MODEL_NAME"):
            make_detector("grpc://127.0.0.1:1/")
        summary = Pipeline([open_source(str(find_clip()), pace=False)],
                           TritonRunner.connect(classifier.url, "deepfake"),
                           WatchConfig(status_interval_s=0, duration_s=20, face_detector=f"{server.url}/face",
                                       keep_frame_records=50)).run()
    finally:
        server.stop()
        classifier.stop()
    assert summary.overall["frames"] >= 10 and summary.roi["detector"].endswith("on triton")
    assert any(r["faces"] > 0 for r in summary.frame_records)
