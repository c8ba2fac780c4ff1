"""`fakewatch watch` end to end with every monitoring output: a real mosquitto broker, a real HTTP receiver, /metrics
read with prometheus_client's parser, evidence JPEGs decoded; a config file with several cameras and an RTSP camera
that is killed and comes back."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("paho.mqtt")
pytest.importorskip("prometheus_client")

from .conftest import _load_streams_conftest, write_video  # noqa: E402
from .http_receiver import Receiver  # noqa: E402
from .mqtt_broker import Broker, Recorder, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def scrape(port: int) -> dict[tuple, float] | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def watch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fakewatch", "watch", "--no-live", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_demo_publishes_states_events_metrics_webhooks_and_evidence(tmp_path):
    import cv2

    broker = Broker(tmp_path).start()
    hook = Receiver()
    rec = Recorder(broker.port, "fw/#")
    port = free_port()
    snaps = tmp_path / "evidence"
    proc = watch("demo", "--mqtt", f"{broker.url}/fw", "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
                 "--webhook", hook.url, "--snapshots", str(snaps), "--duration", "22", "--window", "1s",
                 "--min-duration", "0.5")
    samples = []
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            s = scrape(port)
            if s is not None:
                samples.append(s)
            time.sleep(1.0)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert rec.wait_for(lambda m: ("fw/available", "offline", False) in m, 30)
        hook.wait_for(len(rec.payloads("fw/events")), 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        rec.close()
        hook.close()
        broker.stop()

    # MQTT: online -> state changes -> FAKE events -> offline
    topics = [t for t, _p, _r in rec.messages]
    avail = rec.payloads("fw/available")
    assert avail[0] == "online" and avail[-1] == "offline"
    states = rec.payloads("fw/demo/state")
    assert states[0] == "UNKNOWN" and "REAL" in states and "FAKE" in states and states[-1] == "UNKNOWN"
    assert states.index("REAL") < states.index("FAKE")               # the demo starts real, then a fake segment
    assert rec.payloads("fw/demo/status")[-1] == "ended" and "live" in rec.payloads("fw/demo/status")
    events = [json.loads(p) for p in rec.payloads("fw/events")]
    assert events and events[0]["type"] == "new"
    first = events[0]["after"]["id"]
    kinds = [e["type"] for e in events if e["after"]["id"] == first]
    assert kinds[0] == "new" and kinds[-1] == "end" and set(kinds) <= {"new", "update", "end"}
    for e in events:
        a = e["after"]
        assert a["camera"] == "demo" and a["label"] == "fake" and a["model"] == "demo_model.onnx"
        assert 0.5 < a["top_score"] <= 1 and a["start_time"] > 1e9
    assert topics.index("fw/events") < len(topics) - 1 - topics[::-1].index("fw/available")
    # the webhook got the same events, in the same order
    assert hook.events() == events
    # evidence: JPEGs that decode, named in the events by their id
    for e in events:
        snap = e["after"]["snapshot"]
        assert e["after"]["has_snapshot"] and e["after"]["id"] in Path(snap["frame"]).name
        frame, crop = cv2.imread(snap["frame"]), cv2.imread(snap["crop"])
        assert frame.shape == (144, 176, 3) and 20 < crop.shape[0] < 144 and crop.shape[2] == 3
    # /metrics parsed while it ran, and moved
    assert len(samples) >= 3
    key = ("fakewatch_camera_frames_processed_total", (("camera", "demo"),))
    counts = [s[key] for s in samples if key in s]
    assert counts[-1] > counts[0] >= 0 and counts == sorted(counts)
    last = samples[-1]
    assert last[("fakewatch_stage_latency_seconds_count", (("stage", "total"),))] == counts[-1]
    assert last[("fakewatch_batch_size_count", ())] > 0
    assert max(s.get(("fakewatch_alerts_total", (("camera", "demo"), ("label", "fake"))), 0) for s in samples) >= 1


def test_config_cameras_rtsp_killed_goes_stale_or_reconnecting_then_recovers(tmp_path, bright_onnx):
    srv = _load_streams_conftest().RtspServer(fps=10, width=160, height=120).start()
    broker = Broker(tmp_path).start()
    video = write_video(tmp_path / "clip.mp4", 75, fps=25, level=lambda i: 40)
    cfg = tmp_path / "cameras.yaml"
    cfg.write_text(f"""
model: {bright_onnx}
mqtt: {{url: "{broker.url}", topic_prefix: fw, stats_interval: 1}}
stale_after: 1.5
cameras:
  door: {{source: "{srv.url()}"}}
  clip: {{source: "{video}"}}
  demo: {{source: demo}}
  spare: {{source: demo, enabled: false}}
""")
    rec = Recorder(broker.port, "fw/#")
    proc = watch("--config", str(cfg), "--duration", "150")
    try:
        def status_seq() -> list[str]:
            return rec.payloads("fw/door/status")

        assert rec.wait_for(lambda m: ("fw/door/status", "live", False) in m, 90), status_seq()
        assert rec.wait_for(lambda m: ("fw/door/state", "REAL", False) in m
                            or ("fw/door/state", "FAKE", False) in m, 60)
        assert rec.wait_for(lambda m: {"REAL", "FAKE"} & set(rec.payloads("fw/demo/state")), 90)
        srv.kill()
        assert rec.wait_for(lambda m: status_seq()[-1] in ("stale", "reconnecting"), 60), status_seq()
        assert rec.wait_for(lambda m: rec.payloads("fw/door/state")[-1] == "UNKNOWN", 30)
        time.sleep(2.0)
        srv.start()
        n = len(status_seq())
        assert rec.wait_for(lambda m: "live" in status_seq()[n - 1:], 90), status_seq()
        assert rec.wait_for(lambda m: rec.payloads("fw/door/state")[-1] in ("REAL", "FAKE"), 60)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert rec.wait_for(lambda m: ("fw/available", "offline", False) in m, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        rec.close()
        broker.stop()
        srv.stop()
    seq = rec.payloads("fw/door/status")
    down = [i for i, s in enumerate(seq) if s in ("stale", "reconnecting")]
    assert down and "live" in seq[: down[0]] and "live" in seq[down[-1]:], seq
    assert seq[-1] == "ended"
    assert rec.payloads("fw/clip/status")[-1] == "ended" and "live" in rec.payloads("fw/clip/status")
    assert "fw/spare/state" not in {t for t, _p, _r in rec.messages}        # disabled cameras are not run
    stats = [json.loads(p) for p in rec.payloads("fw/stats")]
    assert stats and set(stats[-1]["cameras"]) == {"door", "clip", "demo"}
    assert any(s["cameras"]["door"]["status"] in ("stale", "reconnecting") for s in stats)
    assert rec.payloads("fw/available")[-1] == "offline"
