"""TensorRT runner, pure parts: dtype table, I/O checks, buffer sizing from profile shapes, import boundary."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from fakewatch.core.contract import ModelSpec
from fakewatch.core.tensorrt import parse_trt_version
from fakewatch.runtime.backends.base import BackendError
from fakewatch.runtime.backends.tensorrt_plan import (
    TRT_DTYPES,
    GraphSlots,
    TensorInfo,
    check_batch,
    dtype_name,
    numpy_dtype,
    plan_buffers,
    run_batch,
)
from fakewatch.runtime.backends.tensorrt_runner import TensorRTRunner, parse_device

SPEC = ModelSpec(variant="b0", timm_name="efficientnet_b0", input_size=(224, 224), roi="face")


def _io(profile=((1, 3, 224, 224), (4, 3, 224, 224), (16, 3, 224, 224)), in_dtype="FLOAT", out_dtype="FLOAT",
        out_shape=(-1, 1)):
    return [TensorInfo("input", True, in_dtype, (-1, 3, 224, 224), profile),
            TensorInfo("logit", False, out_dtype, out_shape)]


def test_buffers_sized_for_profile_max_batch():
    plan = plan_buffers(_io(), SPEC)
    assert (plan.min_batch, plan.opt_batch, plan.max_batch) == (1, 4, 16)
    assert plan.input.max_shape == (16, 3, 224, 224) and plan.input.nbytes == 16 * 3 * 224 * 224 * 4
    assert plan.output.max_shape == (16, 1) and plan.output.nbytes == 64
    assert plan.input.shape_for(3) == (3, 3, 224, 224)


def test_fp16_io_halves_the_buffers():
    plan = plan_buffers(_io(in_dtype="HALF", out_dtype="HALF"), SPEC)
    assert plan.input.dtype == np.float16 and plan.input.nbytes == 16 * 3 * 224 * 224 * 2
    assert plan.output.dtype == np.float16 and plan.output.nbytes == 32


def test_static_batch_engine():
    tensors = [TensorInfo("input", True, "FLOAT", (8, 3, 224, 224)), TensorInfo("logit", False, "FLOAT", (8, 1))]
    plan = plan_buffers(tensors, SPEC)
    assert (plan.min_batch, plan.max_batch) == (8, 8)


@pytest.mark.parametrize("tensors,fragment", [
    ([TensorInfo("images", True, "FLOAT", (-1, 3, 224, 224), ((1, 3, 224, 224),) * 3),
      TensorInfo("logit", False, "FLOAT", (-1, 1))], "inputs ['images']"),
    (_io(profile=((1, 3, 256, 256),) * 3), "profile 0"),
    ([TensorInfo("input", True, "FLOAT", (-1, 3, 256, 256), ((1, 3, 256, 256),) * 3),
      TensorInfo("logit", False, "FLOAT", (-1, 1))], "contract says [N, 3, 224, 224]"),
    (_io(out_shape=(-1, 1000)), "output logit has shape [-1, 1000]"),
    (_io(in_dtype="BF16"), "no NumPy host type"),
    ([TensorInfo("input", True, "FLOAT", (-1, 3, 224, 224)), TensorInfo("logit", False, "FLOAT", (-1, 1))],
     "no optimization profile"),
])
def test_plan_rejects_mismatches(tensors, fragment):
    with pytest.raises(BackendError) as err:
        plan_buffers(tensors, SPEC, where="m.engine")
    assert fragment in str(err.value)


def test_check_batch_and_min_batch_padding():
    plan = plan_buffers(_io(profile=((2, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224))), SPEC)
    check_batch(2, plan)
    check_batch(8, plan)
    # a partial batch below the profile's min is padded (like the CPU runners' fixed-batch exports), not refused
    assert [run_batch(n, plan) for n in (1, 2, 3, 8)] == [2, 2, 3, 8]
    for n in (0, 9):
        with pytest.raises(BackendError, match="outside this engine's profile 2:4:8"):
            run_batch(n, plan)


def test_graph_slots_one_context_per_shape_and_lru_bound():
    slots = GraphSlots(max_graphs=3)
    # the review's sequence 1 -> 3 -> 1 -> max: 1 is replayed on its own context, never re-used after shape 3 ran
    assert [slots.slot(n) for n in (1, 3, 1, 16)] == [("capture", None), ("capture", None), ("replay", None),
                                                       ("capture", None)]
    assert slots.slot(2) == ("capture", 3)          # full: the least recently used size (3) is dropped
    assert slots.sizes == (1, 16, 2) and slots.slot(3) == ("capture", 1)
    slots.forget(16)
    assert slots.sizes == (2, 3)
    with pytest.raises(ValueError, match="max_graphs"):
        GraphSlots(0)


def test_dtype_table_and_names():
    assert numpy_dtype("FLOAT") == np.float32 and numpy_dtype("HALF") == np.float16
    assert numpy_dtype("INT8") == np.int8 and TRT_DTYPES["BF16"] is None
    enum_like = types.SimpleNamespace(name="HALF")
    assert dtype_name(enum_like) == "HALF" and dtype_name("DataType.FLOAT") == "FLOAT"
    with pytest.raises(BackendError, match="unknown to fakewatch"):
        numpy_dtype("COMPLEX")


def test_parse_versions_and_devices():
    assert parse_trt_version("10.3.0.30") == (10, 3, 0, 30) and parse_trt_version("11.0") == (11, 0)
    with pytest.raises(ValueError):
        parse_trt_version("10.x")
    assert [parse_device(d) for d in (0, "1", "cuda", "cuda:2", "auto")] == [0, 1, 0, 2, 0]
    with pytest.raises(ValueError, match="CUDA device"):
        parse_device("cpu")


def _runner(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    return TensorRTRunner(engine, SPEC)


def test_runner_without_tensorrt_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import boundary only
    runner = _runner(tmp_path)
    assert runner.device == "cuda" and runner.accepts_device_input
    with pytest.raises(BackendError, match=r"TensorRT is not installed: pip install 'fakewatch\[tensorrt\]'"):
        runner.activate()
    assert not runner.is_active


def test_runner_without_pycuda_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # present, never called
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(BackendError, match="pycuda is not installed.*CUDA_INC_DIR"):
        _runner(tmp_path).activate()


def test_inactive_runner_refuses_gpu_input(tmp_path):
    from fakewatch.runtime.cuda_preprocess import preprocess_into

    runner = _runner(tmp_path)
    with pytest.raises(BackendError, match="not active"):
        runner.infer_prepared(1)
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(BackendError, match="not active"):
        preprocess_into(runner, [img], [(0, 0, 32, 32)])
