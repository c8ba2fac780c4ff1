"""Fixtures for the runtime tests: generated videos, a hand-built ONNX whose score is controlled by brightness, and
the real RTSP server from tests/streams (loaded by path: conftest fixtures do not cross directories)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np
import pytest


def write_video(path: Path, frames: int, fps: float = 25.0, size: tuple[int, int] = (97, 61),
                level: Callable[[int], int] = lambda i: 40) -> Path:
    """An mp4v video (odd size by default) whose frame i is a flat grey of ``level(i)`` with a little texture."""
    import cv2

    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened(), f"cv2.VideoWriter cannot write {path}"
    rng = np.random.default_rng(0)
    for i in range(frames):
        img = np.clip(level(i) + rng.integers(-8, 9, (h, w, 3)), 0, 255).astype(np.uint8)
        vw.write(img)
    vw.release()
    return path


def brightness_model(path: Path, size: int = 32, gain: float = 20.0, centre: float = 0.5) -> Path:
    """ONNX [N,3,S,S] -> logit [N,1] = gain * (mean(input) - centre), with a valid fakewatch contract.

    With mean=(0,0,0), std=(1,1,1) the input is pixel/255, so a frame of grey level g scores
    sigmoid(gain * (g/255 - centre)): g=230 -> P(fake)~1, g=40 -> P(fake)~0.
    """
    import onnx
    from onnx import TensorProto, helper

    from fakewatch.core.checkpoint import default_spec
    from fakewatch.core.contract import embed_in_onnx, write_sidecar

    spec = default_spec("test", roi="full", input_size=(size, size), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                        threshold=0.5).with_provenance(note="brightness test model")
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=1),      # [N,1,1,1]
        helper.make_node("Reshape", ["m", "shape"], ["m2"]),                              # [N,1]
        helper.make_node("Sub", ["m2", "centre"], ["d"]),
        helper.make_node("Mul", ["d", "gain"], ["logit"]),
    ]
    inits = [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
             helper.make_tensor("centre", TensorProto.FLOAT, [], [centre]),
             helper.make_tensor("gain", TensorProto.FLOAT, [], [gain])]
    graph = helper.make_graph(
        nodes, "brightness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    embed_in_onnx(model, spec)
    onnx.save(model, str(path))
    write_sidecar(path, spec)
    return path


@pytest.fixture(scope="session")
def bright_onnx(tmp_path_factory) -> Path:
    return brightness_model(tmp_path_factory.mktemp("bright") / "bright.onnx")


def _load_streams_conftest():
    path = Path(__file__).resolve().parents[1] / "streams" / "conftest.py"
    if not path.is_file():
        pytest.skip("tests/streams/conftest.py (RTSP server fixture) is not there")
    spec = importlib.util.spec_from_file_location("_streams_conftest_for_runtime", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def runtime_rtsp_server():
    """The streams engineers' gst-rtsp-server (skips without it, fails in CI with FAKEWATCH_REQUIRE_RTSP=1)."""
    mod = _load_streams_conftest()
    srv = mod.RtspServer(fps=25, width=160, height=120).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tiny_onnx_fixed4(tiny_onnx, tmp_path_factory) -> Path:
    """The tiny export with its batch dimension fixed to 4 (what a fixed-batch export looks like), same contract."""
    onnx = pytest.importorskip("onnx")
    from fakewatch.core.contract import load_spec, write_sidecar

    m = onnx.load(str(tiny_onnx))
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    fixed = tmp_path_factory.mktemp("fixed4") / "fixed4.onnx"
    onnx.save(m, str(fixed))
    write_sidecar(fixed, load_spec(tiny_onnx))
    return fixed
