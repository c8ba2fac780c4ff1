"""Prometheus /metrics served on 127.0.0.1 and read back with prometheus_client's own text parser."""
from __future__ import annotations

import math
import urllib.request

import numpy as np
import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from fakewatch.runtime.metrics_output import MetricsOutput  # noqa: E402
from fakewatch.runtime.monitor import Output  # noqa: E402
from fakewatch.runtime.pipeline import FrameView  # noqa: E402


def scrape(port: int) -> dict[tuple, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_names_values_and_movement():
    t = [100.0]

    class Other(Output):
        name, dropped = "mqtt", 7

    m = MetricsOutput(0, "127.0.0.1", siblings=[Other()], clock=lambda: t[0])
    m.start({"model": "demo_model.onnx", "backend": "onnxruntime", "cameras": ["lobby"]})
    try:
        s0 = scrape(m.port)
        cam = (("camera", "lobby"),)
        assert s0[("fakewatch_camera_frames_processed_total", cam)] == 0
        assert s0[("fakewatch_camera_fake", cam)] == -1
        assert s0[("fakewatch_camera_state", (("camera", "lobby"), ("fakewatch_camera_state", "UNKNOWN")))] == 1
        assert math.isnan(s0[("fakewatch_camera_last_frame_age_seconds", cam)])
        info = [k for k in s0 if k[0] == "fakewatch_info"][0]
        assert dict(info[1])["model"] == "demo_model.onnx" and dict(info[1])["backend"] == "onnxruntime"

        img = np.zeros((8, 8, 3), np.uint8)
        stamps = {"capture": 10.0, "dequeue": 10.002, "roi": 10.010, "preprocess": 10.011, "batch": 10.011,
                  "inference": 10.041, "decision": 10.042, "alert": 10.043}
        for seq in range(3):
            m.frame(FrameView("lobby", seq, img, [], [], "FAKE", 0.9, stamps, 99.5))
        m.batch(2, "full")
        m.batch(1, "timeout")
        m.status("lobby", "live", "")
        m.state("lobby", "FAKE", 0.9)
        m.camera_stats("lobby", {"fps": 24.5, "score": 0.91, "state": "FAKE", "dropped": 4})
        m.camera_stats("lobby", {"fps": 25.0, "score": 0.93, "state": "FAKE", "dropped": 6})
        m.event({"type": "new", "after": {"camera": "lobby", "label": "fake"}})
        m.status("lobby", "stale", "")
        m.status("lobby", "live", "")                      # recovered: one reconnect
        s = scrape(m.port)
    finally:
        m.close()
    assert s[("fakewatch_camera_frames_processed_total", cam)] == 3
    from fakewatch.runtime.monitor import Monitor

    assert Monitor([m]).service_stats()["outputs"] == {"metrics": {"dropped": 0}}    # the Output contract
    assert s[("fakewatch_camera_frames_dropped_total", cam)] == 6          # cumulative status -> counter
    assert s[("fakewatch_camera_fps", cam)] == 25.0
    assert s[("fakewatch_camera_score", cam)] == pytest.approx(0.93)
    assert s[("fakewatch_camera_fake", cam)] == 1
    assert s[("fakewatch_camera_reconnects_total", cam)] == 1
    assert s[("fakewatch_camera_last_frame_age_seconds", cam)] == pytest.approx(0.5)
    assert s[("fakewatch_alerts_total", (("camera", "lobby"), ("label", "fake")))] == 1
    assert s[("fakewatch_events_total", (("type", "new"),))] == 1
    assert s[("fakewatch_output_dropped", (("output", "mqtt"),))] == 7
    assert s[("fakewatch_batch_size_count", ())] == 2 and s[("fakewatch_batch_size_sum", ())] == 3
    inf = (("stage", "inference"),)
    assert s[("fakewatch_stage_latency_seconds_count", inf)] == 3
    assert s[("fakewatch_stage_latency_seconds_sum", inf)] == pytest.approx(0.09, abs=1e-6)
    assert s[("fakewatch_stage_latency_seconds_bucket", (("le", "0.025"), ("stage", "inference")))] == 0
    assert s[("fakewatch_stage_latency_seconds_bucket", (("le", "0.05"), ("stage", "inference")))] == 3
    assert s[("fakewatch_stage_latency_seconds_count", (("stage", "total"),))] == 3
    assert s[("fakewatch_camera_status", (("camera", "lobby"), ("fakewatch_camera_status", "live")))] == 1


def test_port_in_use_is_one_clear_error():
    a = MetricsOutput(0, "127.0.0.1")
    a.start({})
    try:
        b = MetricsOutput(a.port, "127.0.0.1")
        with pytest.raises(RuntimeError, match=f"--metrics-port {a.port} on 127.0.0.1: .*pick a free port"):
            b.start({})
    finally:
        a.close()
    with pytest.raises(ValueError, match="0..65535"):
        MetricsOutput(70000)


def test_grafana_dashboard_queries_only_metrics_we_export():
    import json
    import re
    from pathlib import Path

    dash = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    m = MetricsOutput(0)
    m._camera("cam")                               # labelled series appear once they have a child
    m.latency.labels("total").observe(0.1)
    m.event({"type": "new", "after": {"camera": "cam", "label": "fake"}})
    exported = set()
    for fam in m.registry.collect():
        exported |= {s.name for s in fam.samples} | {fam.name}
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\bfakewatch_[a-z_]+", e)}
    assert used and used <= exported, used - exported
    assert {"fakewatch_camera_fake", "fakewatch_stage_latency_seconds_bucket", "fakewatch_alerts_total",
            "fakewatch_camera_last_frame_age_seconds"} <= used
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
