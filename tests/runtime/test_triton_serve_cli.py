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
