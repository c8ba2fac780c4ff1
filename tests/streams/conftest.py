"""Fixtures for the streams tests: a real RTSP server (gst-rtsp-server under the system python3) and small
generated video files.

Without the server (no /usr/bin/python3 with gi + GstRtspServer) RTSP tests skip, except when
FAKEWATCH_REQUIRE_RTSP=1 (CI), where a missing server is a failure.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = os.environ.get("FAKEWATCH_RTSP_PYTHON", "/usr/bin/python3")
REQUIRE = os.environ.get("FAKEWATCH_REQUIRE_RTSP") == "1"


def _unavailable(why: str) -> None:
    msg = f"RTSP test server unavailable: {why}"
    if REQUIRE:
        pytest.fail(msg + " (FAKEWATCH_REQUIRE_RTSP=1: install python3-gi gir1.2-gst-rtsp-server-1.0 "
                    "gstreamer1.0-plugins-{good,bad,ugly})", pytrace=False)
    pytest.skip(msg)


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class RtspServer:
    """One gst-rtsp-server process. `kill()` is a crash (SIGKILL); `restart()` comes back on the same port."""

    def __init__(self, fps: int = 25, width: int = 320, height: int = 240, path: str = "/test",
                 user: str | None = None, password: str | None = None, file: str | None = None,
                 digest: bool = False) -> None:
        self.fps, self.width, self.height, self.path = fps, width, height, path
        self.user, self.password, self.file, self.digest = user, password, file, digest
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def url(self, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}{self.path}"

    def start(self, timeout: float = 15.0) -> "RtspServer":
        if not Path(SYSTEM_PYTHON).exists():
            _unavailable(f"{SYSTEM_PYTHON} not found")
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--fps", str(self.fps),
               "--width", str(self.width), "--height", str(self.height), "--path", self.path]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password or ""] + (["--digest"] if self.digest else [])
        if self.file:
            cmd += ["--file", self.file]
        deadline = time.monotonic() + timeout
        while True:     # the port may still be held for a moment after a kill: retry until the deadline
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         start_new_session=True)
            line = self._read_line(deadline)
            if line.startswith("READY"):
                self.port = int(line.split()[1])
                break
            out = line + self._drain()
            self.proc.kill()
            self.proc.wait()
            if "could not bind" in out and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            _unavailable(f"server did not start: {out.strip()[-800:] or 'no output'}")
        if not wait_port(self.port, max(1.0, deadline - time.monotonic())):
            self.stop()
            _unavailable(f"server printed READY but port {self.port} does not accept connections")
        return self

    def _read_line(self, deadline: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                return self.proc.stdout.readline()
            if self.proc.poll() is not None:
                return ""
        return ""

    def _drain(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        if self.proc.poll() is None:
            return ""
        return self.proc.stdout.read() or ""

    def kill(self) -> None:
        """Crash the server (no RTSP TEARDOWN)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def restart(self) -> "RtspServer":
        self.kill()
        return self.start()


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspServer]:
    """A shared 25 fps 320x240 videotestsrc stream (tests must not kill it)."""
    srv = RtspServer(fps=25).start()
    yield srv
    srv.stop()


@pytest.fixture
def rtsp_server_factory() -> Iterator:
    """Start private servers (for kill/restart or auth tests); all stopped at teardown."""
    made: list[RtspServer] = []

    def make(**kw) -> RtspServer:
        srv = RtspServer(**kw).start()
        made.append(srv)
        return srv

    yield make
    for s in made:
        s.stop()


def write_video(path: Path, frames: int = 50, fps: float = 25.0, size: tuple[int, int] = (160, 120),
                fourcc: str = "mp4v") -> Path:
    """A small test video whose frame i has mean brightness ~ 4*i (so order/identity can be checked)."""
    import cv2

    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened(), f"cv2.VideoWriter could not open {path} with {fourcc}"
    for i in range(frames):
        img = np.full((h, w, 3), (4 * i) % 256, np.uint8)
        cv2.putText(img, str(i), (5, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 255), 2)
        vw.write(img)
    vw.release()
    return path


@pytest.fixture(scope="session")
def video_25fps(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("vid") / "clip25.mp4", frames=75, fps=25.0)
