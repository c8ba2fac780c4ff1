"""`fakewatch serve` without a server: option checks, the interpreter search and the libpython fix."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fakewatch.cli import main
from fakewatch.runtime.serve_cli import ENV_VAR, server_python
from fakewatch.runtime.triton_serve import ServeConfig, libpython_dir, stub_environment

DEMO = Path(__file__).resolve().parents[2] / "runtime" / "assets" / "demo" / "demo_model.onnx"


@pytest.mark.parametrize("changes, words", [
    ({"grpc_port": 8000}, "must differ"),
    ({"http_port": 70000}, "is not a TCP port"),
    ({"max_batch": 4, "preferred_batch": (8,)}, r"--preferred-batch \[8\] must lie in 1..4"),
    ({"instances": 0}, "--instances must be >= 1"),
    ({"name": "bad name"}, "letters, digits"),
])
def test_serve_config_refuses_bad_options(changes, words):
    with pytest.raises(ValueError, match=words):
        ServeConfig(model=DEMO, name=changes.pop("name", "deepfake"), **changes)


def test_server_python_names_what_it_tried(tmp_path, monkeypatch):
    project_python = sys.executable                  # numpy 2: cannot host PyTriton 0.7
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope" / "python"))
    monkeypatch.chdir(tmp_path)                     # no .venv-pytriton here
    monkeypatch.setattr(sys, "executable", str(tmp_path / "missing-python"))
    with pytest.raises(RuntimeError) as err:
        server_python()
    text = str(err.value)
    assert str(tmp_path / "nope" / "python") + " (missing)" in text and "make pytriton-env" in text
    with pytest.raises(RuntimeError, match=r"numpy 2\.|No module named 'pytriton'"):
        server_python(Path(project_python))


def test_serve_cli_refuses_missing_model_before_starting(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_libpython_first_on_ld_library_path():
    env = stub_environment({"LD_LIBRARY_PATH": "/opt/x:/opt/y"})
    libdir = libpython_dir()
    if libdir is None:                               # a statically linked interpreter: nothing to fix
        assert env["LD_LIBRARY_PATH"] == "/opt/x:/opt/y"
    else:
        assert env["LD_LIBRARY_PATH"].split(":") == [libdir, "/opt/x", "/opt/y"]
        assert (Path(libdir) / f"libpython{sys.version_info.major}.{sys.version_info.minor}.so").exists() or \
            any(Path(libdir).glob("libpython*.so*"))


def test_python_backend_repository_parses_as_triton_config_and_carries_the_contract(tmp_path):
    pytest.importorskip("tritonclient.grpc")
    import json

    from fakewatch.core.triton import spec_from_config
    from fakewatch.export.triton_repo import validate_config
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.triton_python_serve import server_command, TritonDist, write_repository
    from fakewatch.runtime.triton_serve import contract_parameters

    spec = load_runner(DEMO).spec
    cfg = ServeConfig(model=DEMO, name="deepfake", max_batch=8, max_queue_delay_us=500, instances=2,
                      runner_options={"intra_op_threads": 1})
    repo = write_repository(cfg, spec, 8, contract_parameters(spec, DEMO), tmp_path)
    parsed = validate_config((repo / "deepfake" / "config.pbtxt").read_text())   # Triton's own protobuf
    assert parsed["backend"] == "python" and int(parsed["max_batch_size"]) == 8
    assert parsed["dynamic_batching"]["preferred_batch_size"] == [4, 8]      # a batch of 4 or 8 never waits
    assert parsed["dynamic_batching"]["max_queue_delay_microseconds"] == "500"
    assert parsed["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    assert parsed["input"][0]["dims"] == ["3", "112", "112"]
    assert spec_from_config(parsed) == spec                                    # clients read the contract back
    serve = json.loads((repo / "deepfake" / "1" / "serve.json").read_text())
    assert serve == {"artifact": str(DEMO.resolve()), "backend": None, "runner_options": {"intra_op_threads": 1}}
    assert "from fakewatch.runtime.triton_stub_model import TritonPythonModel" in \
        (repo / "deepfake" / "1" / "model.py").read_text()
    dist = TritonDist(Path("/x/tritonserver"), Path("/x/python"), Path("/x/stub"), Path("/x/libs"))
    cmd = server_command(dist, repo, tmp_path / "backends", cfg, "fw_1_")
    assert cmd[0] == "/x/tritonserver" and f"--model-repository={repo}" in cmd
    assert "--backend-config=python,shm-region-prefix-name=fw_1_" in cmd       # several servers on one machine
    assert "--grpc-address=127.0.0.1" in cmd and "--grpc-port=8001" in cmd


def test_python_backend_without_the_pytriton_wheel_says_how_to_get_it(monkeypatch):
    import builtins

    from fakewatch.runtime.triton_python_serve import find_dist

    real_import = builtins.__import__

    def no_pytriton(name, *a, **k):
        if name.startswith("pytriton"):
            raise ImportError("No module named 'pytriton'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pytriton)
    with pytest.raises(RuntimeError, match="nvidia-pytriton wheel.*make pytriton-env"):
        find_dist()


def test_serve_config_refuses_an_unknown_server_kind():
    with pytest.raises(ValueError, match="--server 'docker': choose one of"):
        ServeConfig(model=DEMO, name="deepfake", server="docker")


def test_repositories_of_killed_servers_are_removed(tmp_path):
    import os

    from fakewatch.runtime.triton_python_serve import remove_stale_workdirs

    dead = tmp_path / "fakewatch-serve-999999999-abc"
    alive = tmp_path / f"fakewatch-serve-{os.getppid()}-abc"
    other = tmp_path / "fakewatch-serve-notapid"
    for d in (dead, alive, other):
        (d / "models").mkdir(parents=True)
    assert remove_stale_workdirs(tmp_path) == [dead]
    assert alive.is_dir() and other.is_dir() and not dead.exists()


def test_shared_memory_of_killed_servers_is_removed(tmp_path):
    import os

    from fakewatch.runtime.triton_python_serve import SHM_REGION_PREFIX, remove_stale_server_regions

    dead = tmp_path / f"{SHM_REGION_PREFIX}999999999_1f0e"
    alive = tmp_path / f"{SHM_REGION_PREFIX}{os.getppid()}_1f0e"
    client = tmp_path / "fakewatch_triton_999999999_in"       # a client's region: not the server's to remove
    for p in (dead, alive, client):
        p.write_bytes(b"\0" * 64)
    assert remove_stale_server_regions(tmp_path) == [dead]
    assert alive.exists() and client.exists() and not dead.exists()


def test_the_server_process_dies_with_a_killed_serve(tmp_path):
    """SIGKILL of the serve process must not leave tritonserver (here: a sleeping child) running as an orphan."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from fakewatch.runtime.triton_python_serve import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '600'], preexec_fn=die_with_parent())\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n")])
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pidfile.read_text())
        assert os.path.exists(f"/proc/{child}")
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
            with open(f"/proc/{child}/stat") as f:        # a zombie of init counts as gone
                if f.read().split(")")[-1].split()[0] == "Z":
                    break
            time.sleep(0.1)
        else:
            assert not os.path.exists(f"/proc/{child}"), "the child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
