"""Pure helpers of the TensorRT runner: dtype table, I/O checks against the contract, buffer sizing.

Everything here works on plain values read from an engine (names, modes, dtype names, profile shapes), so the CPU
tests cover it without TensorRT; :mod:`fakewatch.runtime.backends.tensorrt_runner` only reads those values from the
engine and hands them in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.runtime.backends.base import BackendError

#: TensorRT ``DataType`` member name -> NumPy dtype of the host buffer (None: no NumPy equivalent, refused).
#: Names, not enum objects, so the table is usable without TensorRT; both 10.x and 11.x use these names.
TRT_DTYPES: dict[str, np.dtype | None] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "BF16": None,
    "FP8": None,
    "INT4": None,
    "FP4": None,
}


def dtype_name(trt_dtype: object) -> str:
    """``trt.DataType.HALF`` -> ``"HALF"`` (pybind enums have ``.name``; ``str()`` gives ``DataType.HALF``)."""
    name = getattr(trt_dtype, "name", None)
    return str(name if name is not None else trt_dtype).split(".")[-1].upper()


def numpy_dtype(name: str, tensor: str = "tensor") -> np.dtype:
    if name not in TRT_DTYPES:
        raise BackendError(f"engine {tensor} has TensorRT dtype {name}, unknown to fakewatch "
                           f"(known: {', '.join(TRT_DTYPES)})")
    dt = TRT_DTYPES[name]
    if dt is None:
        raise BackendError(f"engine {tensor} is {name}, which has no NumPy host type; export the model with "
                           f"float32 or float16 I/O (keep_io_types when converting to mixed precision)")
    return dt


@dataclass(frozen=True)
class TensorInfo:
    """What the runner reads from ``ICudaEngine`` for one I/O tensor (plain values)."""

    name: str
    is_input: bool
    dtype: str                                   # DataType member name, e.g. "FLOAT"
    shape: tuple[int, ...]                       # engine shape, -1 for dynamic dims
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None  # inputs: (min, opt, max)


@dataclass(frozen=True)
class BufferPlan:
    name: str
    dtype: np.dtype
    max_shape: tuple[int, ...]
    nbytes: int

    def shape_for(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.max_shape[1:])


@dataclass(frozen=True)
class IOPlan:
    input: BufferPlan
    output: BufferPlan
    min_batch: int
    opt_batch: int
    max_batch: int


def plan_buffers(tensors: Sequence[TensorInfo], spec: ModelSpec, where: str = "engine") -> IOPlan:
    """Check the engine's I/O against the contract and size buffers for the profile's max batch.

    The contract's input must be [N, 3, H, W] with a batch range from optimization profile 0; the output
    [N, num_outputs]. Device buffers are sized from ``get_tensor_profile_shape(name, 0)[2]`` (the max), so one
    allocation serves every batch size the engine accepts.
    """
    ins = {t.name: t for t in tensors if t.is_input}
    outs = {t.name: t for t in tensors if not t.is_input}
    if spec.input_name not in ins or spec.output_name not in outs or len(ins) != 1:
        raise BackendError(f"{where}: the contract names input {spec.input_name!r} and output {spec.output_name!r} "
                           f"but the engine has inputs {sorted(ins)} and outputs {sorted(outs)}; rebuild it from "
                           f"the model's ONNX with `fakewatch engine`")
    tin, tout = ins[spec.input_name], outs[spec.output_name]
    want = (3, *spec.input_size)
    if len(tin.shape) != 4 or tuple(tin.shape[1:]) != want:
        raise BackendError(f"{where}: input {tin.name} has shape {list(tin.shape)} but the contract says "
                           f"[N, {', '.join(map(str, want))}]")
    if tin.profile is None:
        if tin.shape[0] <= 0:
            raise BackendError(f"{where}: input {tin.name} has a dynamic batch but no optimization profile")
        lo = opt = hi = int(tin.shape[0])
    else:
        pmin, popt, pmax = (tuple(int(v) for v in s) for s in tin.profile)
        for s in (pmin, popt, pmax):
            if tuple(s[1:]) != want:
                raise BackendError(f"{where}: profile 0 of {tin.name} is {pmin}/{popt}/{pmax}; expected "
                                   f"[N, {', '.join(map(str, want))}] at every point")
        lo, opt, hi = pmin[0], popt[0], pmax[0]
        if not (1 <= lo <= opt <= hi):
            raise BackendError(f"{where}: profile 0 batch range {lo}:{opt}:{hi} is not 1 <= min <= opt <= max")
    if len(tout.shape) != 2 or tout.shape[1] not in (-1, spec.num_outputs):
        raise BackendError(f"{where}: output {tout.name} has shape {list(tout.shape)} but the contract says "
                           f"[N, {spec.num_outputs}]")
    in_shape = (hi, *want)
    out_shape = (hi, spec.num_outputs)
    in_dt = numpy_dtype(tin.dtype, f"input {tin.name}")
    out_dt = numpy_dtype(tout.dtype, f"output {tout.name}")
    return IOPlan(
        input=BufferPlan(tin.name, in_dt, in_shape, math.prod(in_shape) * in_dt.itemsize),
        output=BufferPlan(tout.name, out_dt, out_shape, math.prod(out_shape) * out_dt.itemsize),
        min_batch=lo, opt_batch=opt, max_batch=hi)


def check_batch(n: int, plan: IOPlan) -> None:
    """Batches above the profile's max are refused; below its min they are padded (:func:`run_batch`)."""
    if not (1 <= n <= plan.max_batch):
        raise BackendError(f"batch {n} is outside this engine's profile {plan.min_batch}:{plan.opt_batch}:"
                           f"{plan.max_batch}; rebuild with `fakewatch engine ... --batch MIN:OPT:MAX` covering it")


def run_batch(n: int, plan: IOPlan) -> int:
    """Rows to run for ``n`` real inputs: ``n``, or the profile's min when it is larger (a partial batch of a
    ``--batch 4:4:4`` engine is padded like the CPU runners' fixed-batch exports; the extra outputs are dropped)."""
    check_batch(n, plan)
    return max(n, plan.min_batch)


class GraphSlots:
    """Which CUDA graph serves a batch size. A graph is replayed only on the execution context it was captured on,
    and that context never runs another shape: TensorRT may re-plan its internal memory when the input shape
    changes, so a graph captured at batch 3 and replayed after batch 1 ran on the same context would use stale
    addresses. Each captured size gets its own context; at most ``max_graphs`` live at once (least recently used
    goes first) because each context holds its own activation memory.

    ``slot(n)`` returns ``("replay", None)`` or ``("capture", evicted_size_or_None)``; the runner does the CUDA work.
    """

    def __init__(self, max_graphs: int = 4) -> None:
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {max_graphs}")
        self.max_graphs = max_graphs
        self._order: list[int] = []          # least recently used first

    def slot(self, n: int) -> tuple[str, int | None]:
        if n in self._order:
            self._order.remove(n)
            self._order.append(n)
            return "replay", None
        evicted = self._order.pop(0) if len(self._order) >= self.max_graphs else None
        self._order.append(n)
        return "capture", evicted

    def forget(self, n: int) -> None:
        if n in self._order:
            self._order.remove(n)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self._order)


__all__ = ["BufferPlan", "GraphSlots", "IOPlan", "TRT_DTYPES", "TensorInfo", "check_batch", "dtype_name",
           "numpy_dtype", "plan_buffers", "run_batch"]
