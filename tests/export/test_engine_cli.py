"""`fakewatch engine` without TensorRT: validates everything it can, then fails with one clear install message."""
from __future__ import annotations

import sys

import pytest

from fakewatch.cli import SUBCOMMANDS, main

from . import tensorrt_fixtures as M


@pytest.fixture()
def no_tensorrt(monkeypatch):
    # The import boundary only: `import tensorrt` raises ImportError, as on a machine without it.
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def test_engine_is_a_registered_subcommand():
    assert ("engine", "fakewatch.export.engine_cli") in SUBCOMMANDS


def test_missing_tensorrt_is_one_clear_error(tmp_path, capsys, no_tensorrt):
    onnx_path = M.save(M.conv_model(), tmp_path / "m.onnx")
    rc = main(["engine", str(onnx_path), "--batch", "1:2:4"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.startswith("fakewatch engine: error: TensorRT is not installed: pip install 'fakewatch[tensorrt]'")
    assert "python3-libnvinfer" in err and "\n" not in err
    assert not (tmp_path / "m.engine").exists()


def test_int8_refused_before_tensorrt_is_needed(tmp_path, capsys, no_tensorrt):
    onnx_path = M.save(M.conv_model(), tmp_path / "m.onnx")
    assert main(["engine", str(onnx_path), "--precision", "int8"]) == 1
    assert "needs a quantized (Q/DQ) ONNX" in capsys.readouterr().err


@pytest.mark.parametrize("argv,fragment", [
    (["--batch", "8:4:1"], "MIN <= OPT <= MAX"),
    (["-o", "/nonexistent-dir/x.engine"], "directory /nonexistent-dir does not exist"),
])
def test_bad_arguments(tmp_path, capsys, no_tensorrt, argv, fragment):
    onnx_path = M.save(M.conv_model(), tmp_path / "m.onnx")
    assert main(["engine", str(onnx_path), *argv]) == 1
    assert fragment in capsys.readouterr().err


def test_missing_model(capsys):
    assert main(["engine", "/nonexistent/m.onnx"]) == 1
    assert "does not exist" in capsys.readouterr().err
