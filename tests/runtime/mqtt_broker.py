"""A real MQTT broker for tests: Debian's ``mosquitto`` on 127.0.0.1 (a free port), plus a recording subscriber.

The broker can be stopped and started again on the same port (a broker outage). Tests skip when mosquitto is not
installed, and fail in CI (FAKEWATCH_REQUIRE_MQTT=1, set by .ci/run, which installs it).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_mosquitto() -> str:
    if MOSQUITTO is None:
        if os.environ.get("FAKEWATCH_REQUIRE_MQTT"):
            pytest.fail("mosquitto is required (FAKEWATCH_REQUIRE_MQTT=1): apt-get install mosquitto")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return MOSQUITTO


class Broker:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.exe = require_mosquitto()
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-500:]}")
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class Recorder:
    """Subscribes to ``topic`` and keeps every (topic, payload, retain) in arrival order."""

    def __init__(self, port: int, topic: str = "#") -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self._cond = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload.decode(), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[list[tuple[str, str, bool]]], bool], timeout: float = 60.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self.messages), timeout)

    def payloads(self, topic: str) -> list[str]:
        with self._cond:
            return [p for t, p, _r in self.messages if t == topic]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
