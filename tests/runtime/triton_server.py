"""A real Triton server for tests: `fakewatch serve` (PyTriton's bundled tritonserver) on 127.0.0.1, free ports.

No mocks: the server is the same binary Triton ships, the client the same tritonclient gRPC code users run. The server
interpreter comes from `make pytriton-env` (.venv-pytriton) or $FAKEWATCH_PYTRITON_PYTHON; without one the tests
skip, unless FAKEWATCH_REQUIRE_TRITON=1 (CI), where a missing server is a failure.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def server_python_or_skip() -> str:
    pytest.importorskip("tritonclient.grpc")
    from fakewatch.runtime.serve_cli import server_python

    old = os.getcwd()
    try:
        os.chdir(REPO)              # .venv-pytriton is looked up relative to the repository root
        return str(Path(server_python()).absolute())
    except RuntimeError as exc:
        if os.environ.get("FAKEWATCH_REQUIRE_TRITON") == "1":
            pytest.fail(f"FAKEWATCH_REQUIRE_TRITON=1 but no Triton server interpreter: {exc}")
        pytest.skip(f"no PyTriton server interpreter here (make pytriton-env): {exc}")
    finally:
        os.chdir(old)


@dataclass
class Server:
    model: Path
    name: str
    python: str
    grpc: int
    http: int
    metrics: int
    log: Path
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc}"

    def start(self, timeout_s: float = 180.0) -> float:
        """Start and wait until the model is ready; returns the wall-clock time it became ready."""
        cmd = [sys.executable, "-m", "fakewatch", "serve", str(self.model), "--name", self.name, "--python",
               self.python, "--grpc-port", str(self.grpc), "--http-port", str(self.http), "--metrics-port",
               str(self.metrics), *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> float:
        import tritonclient.grpc as grpcclient

        deadline = time.monotonic() + timeout_s
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.grpc}")
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"fakewatch serve exited ({self.proc.returncode}):\n{self.tail()}")
                try:
                    if client.is_model_ready(self.name, client_timeout=2.0):
                        return time.time()
                except Exception:
                    pass
                time.sleep(0.25)
        finally:
            client.close()
        raise AssertionError(f"Triton not ready after {timeout_s:g} s:\n{self.tail()}")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=10) as r:
            return r.read().decode()

    def kill(self) -> None:
        """SIGKILL the whole server process group (tritonserver and its stubs included): a crash, not a stop."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._wait_ports_free()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._wait_ports_free()

    def _wait_ports_free(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            busy = []
            for port in (self.grpc, self.http, self.metrics):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        busy.append(port)
            if not busy:
                return
            time.sleep(0.25)
        raise AssertionError(f"ports {busy} still served after the server was stopped")

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def new_server(model: Path, name: str, tmp: Path, *extra: str) -> Server:
    g, h, m = free_ports(3)
    return Server(model, name, server_python_or_skip(), g, h, m, tmp / f"serve-{name}-{g}.log", tuple(extra))
