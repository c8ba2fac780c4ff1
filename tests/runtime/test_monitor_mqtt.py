"""MQTT output against a real mosquitto broker on 127.0.0.1: topics, retained values, last will, broker outage."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("paho.mqtt")

from fakewatch.runtime.mqtt_output import MqttOutput, MqttSettings, topic_name  # noqa: E402

from .mqtt_broker import Broker, Recorder  # noqa: E402


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def test_settings_from_url_and_errors():
    s = MqttSettings.from_url("mqtt://u%40x:p%3Aw@10.0.0.5:1999/home/fw")
    assert (s.host, s.port, s.user, s.password, s.prefix, s.tls) == ("10.0.0.5", 1999, "u@x", "p:w", "home/fw",
                                                                      False)
    assert "p:w" not in repr(s)
    t = MqttSettings.from_url("mqtts://broker")
    assert (t.port, t.prefix, t.tls, t.user) == (8883, "fakewatch", True, None)
    with pytest.raises(ValueError, match="expected mqtt://"):
        MqttSettings.from_url("http://broker")
    with pytest.raises(ValueError, match="prefix"):
        MqttSettings.from_url("mqtt://broker", prefix="a/#")
    assert topic_name("rtsp://***@cam:554/live/1") == "rtsp:_***@cam:554_live_1"


def test_topics_retained_values_and_clean_offline(broker):
    out = MqttOutput(MqttSettings.from_url(broker.url + "/fw"))
    rec = Recorder(broker.port, "fw/#")
    try:
        out.start({"cameras": ["lobby"]})
        assert out.connected.wait(30)       # (changes made before the first connect collapse to the newest value)
        out.status("lobby", "live", "")
        out.state("lobby", "REAL", 0.1)
        out.state("lobby", "FAKE", 0.9)
        out.event({"type": "new", "before": {"id": "1"}, "after": {"id": "1"}})
        out.stats({"service": {"uptime_s": 1.0}})
        assert rec.wait_for(lambda m: any(t == "fw/stats" for t, _p, _r in m), 30)
        out.close()
        assert rec.wait_for(lambda m: ("fw/available", "offline", False) in m, 30)
    finally:
        rec.close()
    assert rec.payloads("fw/available")[0] == "online"
    assert rec.payloads("fw/lobby/state") == ["REAL", "FAKE"]
    assert rec.payloads("fw/lobby/status") == ["live"]
    assert '"type":"new"' in rec.payloads("fw/events")[0]
    # a late subscriber (Home Assistant starting later) gets the retained topics: the last state, and offline
    late = Recorder(broker.port, "fw/#")
    try:
        assert late.wait_for(lambda m: len(m) >= 3, 30)
        got = {t: (p, r) for t, p, r in late.messages}
    finally:
        late.close()
    assert got["fw/available"] == ("offline", True)
    assert got["fw/lobby/state"] == ("FAKE", True)
    assert got["fw/lobby/status"] == ("live", True)
    assert "fw/events" not in got and "fw/stats" not in got      # events and stats are not retained
    assert out.dropped == 0


def test_last_will_says_offline_when_the_process_dies(broker, tmp_path):
    script = tmp_path / "dies.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        from fakewatch.runtime.mqtt_output import MqttOutput, MqttSettings
        out = MqttOutput(MqttSettings.from_url("{broker.url}/fw"))
        out.start({{}})
        out.connected.wait(30)
        out.state("cam", "REAL", 0.1)
        time.sleep(1.0)
        print("up", flush=True)
        time.sleep(600)
    """))
    rec = Recorder(broker.port, "fw/available")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        assert rec.wait_for(lambda m: ("fw/available", "online", False) in m, 30)
        proc.kill()                                  # no clean stop: only the broker's will can say offline
        proc.wait(10)
        assert rec.wait_for(lambda m: ("fw/available", "offline", False) in m, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
        rec.close()


def test_broker_outage_never_blocks_and_recovery_republishes_state(broker):
    out = MqttOutput(MqttSettings(host="127.0.0.1", port=broker.port, prefix="fw", outbox=50,
                                  reconnect_min_s=1, reconnect_max_s=2))
    out.start({})
    try:
        assert out.connected.wait(30)
        out.state("cam", "REAL", 0.1)
        broker.stop()
        deadline = time.monotonic() + 30
        while out.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not out.connected.is_set()
        for i in range(5000):                       # a burst while the broker is away: queued up to the bound
            out.event({"type": "update", "before": {}, "after": {"i": i}})
        out.state("cam", "FAKE", 0.95)
        assert out.dropped > 0                      # bounded: the rest was dropped and counted
        broker.start()
        assert out.connected.wait(60), "did not reconnect"
        rec = Recorder(broker.port, "fw/#")         # the restarted broker has no retained state of its own
        try:
            assert rec.wait_for(lambda m: {("fw/cam/state", "FAKE"), ("fw/available", "online")}
                                <= {(t, p) for t, p, _r in m}, 30)
        finally:
            rec.close()
        late = Recorder(broker.port, "fw/#")        # ... until fakewatch republished them after reconnecting
        try:
            assert late.wait_for(lambda m: len(m) >= 2, 30)
            retained = {t: p for t, p, r in late.messages if r}
        finally:
            late.close()
        assert retained == {"fw/cam/state": "FAKE", "fw/available": "online"}
    finally:
        out.close()


def test_a_broker_that_is_down_at_start_is_retried(tmp_path):
    broker = Broker(tmp_path)                        # not started yet: nothing listens on its port
    out = MqttOutput(MqttSettings(host="127.0.0.1", port=broker.port, prefix="fw", reconnect_min_s=1,
                                  reconnect_max_s=2))
    out.start({})                                    # returns at once: connect_async
    try:
        out.status("cam", "live", "")
        out.state("cam", "REAL", 0.1)                # kept as the newest retained values meanwhile
        out.state("cam", "FAKE", 0.9)
        assert not out.connected.is_set()
        broker.start()
        assert out.connected.wait(60), "never connected"
        want = {"fw/available": "online", "fw/cam/status": "live", "fw/cam/state": "FAKE"}
        rec = Recorder(broker.port, "fw/#")           # live or retained, whichever comes first
        try:
            assert rec.wait_for(lambda m: set(want.items()) <= {(t, p) for t, p, _r in m}, 30), rec.messages
        finally:
            rec.close()
        late = Recorder(broker.port, "fw/#")          # and now retained on the broker
        try:
            assert late.wait_for(lambda m: len({t for t, _p, r in m if r}) >= 3, 30), late.messages
            retained = {t: p for t, p, r in late.messages if r}
        finally:
            late.close()
        assert retained == want
    finally:
        out.close()
        broker.stop()


def test_home_assistant_discovery_announces_each_camera_once(broker):
    import json

    out = MqttOutput(MqttSettings.from_url(broker.url + "/fw", discovery_prefix="homeassistant"))
    rec = Recorder(broker.port, "homeassistant/#")
    try:
        out.start({"model": "demo_model.onnx"})
        assert out.connected.wait(30)
        out.status("front door", "live", "")
        out.state("front door", "REAL", 0.1)
        out.state("front door", "FAKE", 0.9)
        assert rec.wait_for(lambda m: len(m) >= 1, 30)
        out.close()
    finally:
        rec.close()
    assert len(rec.messages) == 1                        # once per camera, not once per state
    topic, payload, _r = rec.messages[0]
    assert topic == "homeassistant/binary_sensor/fakewatch_fw_front_door/deepfake/config"
    cfg = json.loads(payload)
    assert cfg["state_topic"] == "fw/front_door/state" and (cfg["payload_on"], cfg["payload_off"]) == ("FAKE", "REAL")
    assert cfg["availability"][0] == {"topic": "fw/available"} and cfg["availability_mode"] == "all"
    assert cfg["availability"][1]["topic"] == "fw/front_door/status"
    assert cfg["device"]["model"] == "demo_model.onnx" and cfg["unique_id"] == "fakewatch_fw_front_door_deepfake"
    # the templates HA will run: UNKNOWN -> 'None' (HA's unknown), any status but live -> offline
    jinja2 = pytest.importorskip("jinja2")
    render = lambda tpl, value: jinja2.Template(tpl).render(value=value)  # noqa: E731
    assert [render(cfg["value_template"], v) for v in ("FAKE", "REAL", "UNKNOWN")] == ["FAKE", "REAL", "None"]
    assert [render(cfg["availability"][1]["value_template"], v) for v in ("live", "stale", "reconnecting")] == \
        ["online", "offline", "offline"]
