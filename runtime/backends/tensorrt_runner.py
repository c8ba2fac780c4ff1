"""TensorRT backend: a plain engine plan + its sidecar, run with pycuda (TensorRT 10/11 name-based API).

Per runner: one CUDA context (``Device(i).make_context()``, popped right after setup and pushed/popped around
every call, so several runners and threads can coexist), one stream, page-locked host buffers and device buffers
sized once for the optimization profile's max batch (``get_tensor_profile_shape(name, 0)[2]``). Each call sets
``set_input_shape`` and runs ``execute_async_v3``; the GPU time between two CUDA events around it is the runner's
``last_inference_ms`` (like trtexec's "GPU Compute Time"; copies are excluded). ``cuda_graph=True`` captures one
CUDA graph per batch size, each on its own execution context that never runs another shape (``GraphSlots``).
Batches below the profile's min are padded. Before deserializing, the plan's size and sha256 are checked against
the sidecar (a truncated copy is refused), the sidecar against the running TensorRT and GPU
(:func:`fakewatch.core.tensorrt.check_engine_compat`), and ``runtime.DLA_core`` is set for DLA engines. The fused
preprocessing kernel is compiled in ``activate``; when that fails (no nvcc, no CUDA headers) the runner says why
once and takes host-preprocessed batches instead (``accepts_device_input`` becomes False).

Written against NVIDIA's documented TensorRT 10/11 and pycuda APIs; it has not run in this project's CI (no GPU
or TensorRT there). The decisions it makes (I/O checks, buffer sizes, dtypes) live in
:mod:`fakewatch.runtime.backends.tensorrt_plan` and are CPU-tested.
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
from typing import Any, Iterator, Sequence

import numpy as np

from fakewatch.core.contract import read_sidecar_doc
from fakewatch.core.tensorrt import TENSORRT_MISSING, check_engine_compat, check_plan_intact
from fakewatch.runtime.backends.base import BackendError, Runner
from fakewatch.runtime.backends.tensorrt_plan import (
    GraphSlots,
    IOPlan,
    TensorInfo,
    check_batch,
    dtype_name,
    plan_buffers,
    run_batch,
)

log = logging.getLogger("fakewatch.runtime")

_CAPTURE_MODE_THREAD_LOCAL = 1  # CUstreamCaptureMode


def import_gpu_libs() -> tuple[Any, Any]:
    """The import boundary: (tensorrt, pycuda.driver) or one BackendError with install advice."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendError(TENSORRT_MISSING) from None
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise BackendError("pycuda is not installed (the TensorRT runner's CUDA layer): pip install "
                           "'fakewatch[tensorrt]'; on a Jetson set PATH and CUDA_INC_DIR first (docs/jetson.md)"
                           ) from None
    return trt, cuda


def parse_device(device: Any) -> int:
    """0 / "0" / "cuda" / "cuda:1" / "auto" -> CUDA device index."""
    text = str(device).strip().lower()
    if text in ("auto", "cuda", "gpu"):
        return 0
    text = text.removeprefix("cuda:")
    if not text.isdigit():
        raise ValueError(f"tensorrt runs on a CUDA device: use device=N or 'cuda:N', not {device!r}")
    return int(text)


class _DriverGraphs:
    """CUDA graphs through the CUDA driver API (libcuda, present wherever pycuda runs), one per batch size."""

    def __init__(self) -> None:
        self._cu = ctypes.CDLL("libcuda.so.1")
        self.execs: dict[int, ctypes.c_void_p] = {}
        self.graphs: dict[int, ctypes.c_void_p] = {}

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise BackendError(f"CUDA graph {what} failed (CUresult {rc})")

    def capture(self, batch: int, stream_handle: int, enqueue) -> None:
        h = ctypes.c_void_p(stream_handle)
        self._check(self._cu.cuStreamBeginCapture_v2(h, _CAPTURE_MODE_THREAD_LOCAL), "begin capture")
        graph = ctypes.c_void_p()
        try:
            ok = enqueue()
        finally:
            rc = self._cu.cuStreamEndCapture(h, ctypes.byref(graph))
        if not ok:
            raise BackendError("execute_async_v3 failed while capturing a CUDA graph")
        self._check(rc, "end capture")
        exe = ctypes.c_void_p()
        self._check(self._cu.cuGraphInstantiateWithFlags(ctypes.byref(exe), graph, ctypes.c_ulonglong(0)),
                    "instantiate")
        self.graphs[batch] = graph
        self.execs[batch] = exe

    def launch(self, batch: int, stream_handle: int) -> None:
        self._check(self._cu.cuGraphLaunch(self.execs[batch], ctypes.c_void_p(stream_handle)), "launch")

    def drop(self, batch: int) -> None:
        exe, graph = self.execs.pop(batch, None), self.graphs.pop(batch, None)
        if exe is not None:
            self._cu.cuGraphExecDestroy(exe)
        if graph is not None:
            self._cu.cuGraphDestroy(graph)

    def free(self) -> None:
        for batch in list(self.execs):
            self.drop(batch)


class TensorRTRunner(Runner):
    """Options: ``device`` (CUDA index or "cuda:N"), ``cuda_graph`` (capture per batch size), ``dla_core``
    (default: the sidecar's), ``check_compat`` (default True; False skips the sidecar and plan-hash checks -
    TensorRT then fails on its own with "The engine plan file is not compatible with this version of TensorRT"),
    ``max_graphs`` (CUDA graphs kept at once, default 4), ``device_preprocess`` (default True: compile the fused
    kernel in ``activate``, falling back to host preprocessing when it cannot be compiled)."""

    name = "tensorrt"
    device = "cuda"
    #   the pipeline may fill the input buffer on the GPU: fakewatch.runtime.cuda_preprocess.preprocess_into +
    # infer_prepared
    accepts_device_input = True

    def __init__(self, artifact, spec, *, device: Any = 0, cuda_graph: bool = False, dla_core: int | None = None,
                 check_compat: bool = True, max_graphs: int = 4, device_preprocess: bool = True,
                 **options: Any) -> None:
        super().__init__(artifact, spec, device=device, cuda_graph=cuda_graph, dla_core=dla_core,
                         check_compat=check_compat, max_graphs=max_graphs, device_preprocess=device_preprocess,
                         **options)
        self.max_graphs = int(max_graphs)
        self.device_preprocess = bool(device_preprocess)
        self.preprocess_fallback: str | None = None    # why the fused kernel is not used (set in activate)
        self.device_index = parse_device(device)
        self.cuda_graph = bool(cuda_graph)
        self.dla_core = dla_core
        self.check_compat = check_compat
        self.compat_warnings: list[str] = []
        self.graph_error: str | None = None
        self.plan: IOPlan | None = None
        self._cuda = self._ctx = None
        self._objs: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------
    def activate_impl(self) -> None:
        trt, cuda = import_gpu_libs()
        doc = read_sidecar_doc(self.artifact)
        cuda.init()
        if self.device_index >= cuda.Device.count():
            raise BackendError(f"CUDA device {self.device_index} does not exist ({cuda.Device.count()} visible)")
        dev = cuda.Device(self.device_index)
        self._cuda = cuda
        self._ctx = dev.make_context()  # pushed: current until the pop below
        try:
            self._setup(trt, cuda, dev, doc)
        except Exception:
            self._release_locked()
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
            raise
        self._ctx.pop()

    def _setup(self, trt: Any, cuda: Any, dev: Any, doc: dict) -> None:
        if self.check_compat:
            check_plan_intact(self.artifact, doc)          # before TensorRT parses a possibly truncated plan
            self.compat_warnings = check_engine_compat(doc, trt.__version__, dev.name(), dev.compute_capability(),
                                                       self.artifact)
        o = self._objs
        o["logger"] = trt.Logger(trt.Logger.WARNING)
        o["runtime"] = runtime = trt.Runtime(o["logger"])
        build = doc.get("tensorrt", {})
        dla = self.dla_core if self.dla_core is not None else build.get("dla_core")
        if dla is not None:
            runtime.DLA_core = int(dla)  # must be set before deserializing a DLA engine
        if build.get("version_compatible"):
            runtime.engine_host_code_allowed = True  # version-compatible plans embed the lean runtime
        o["engine"] = engine = runtime.deserialize_cuda_engine(self.artifact.read_bytes())
        if engine is None:
            raise BackendError(f"TensorRT could not deserialize {self.artifact}; rebuild it on this machine: "
                               f"{build.get('rebuild_command', 'fakewatch engine MODEL.onnx')}")
        tensors = [self._tensor_info(trt, engine, engine.get_tensor_name(i)) for i in range(engine.num_io_tensors)]
        self.plan = plan = plan_buffers(tensors, self.spec, where=self.artifact.name)
        if plan.input.dtype not in (np.float32, np.float16):
            raise BackendError(f"{self.artifact.name}: input dtype {plan.input.dtype} unsupported (float32/16 only)")
        o["context"] = context = engine.create_execution_context()
        o["stream"] = cuda.Stream()
        o["host_in"] = cuda.pagelocked_empty(plan.input.max_shape, plan.input.dtype)
        o["host_out"] = cuda.pagelocked_empty(plan.output.max_shape, plan.output.dtype)
        o["dev_in"] = cuda.mem_alloc(plan.input.nbytes)
        o["dev_out"] = cuda.mem_alloc(plan.output.nbytes)
        context.set_tensor_address(plan.input.name, int(o["dev_in"]))   # addresses never change: set once
        context.set_tensor_address(plan.output.name, int(o["dev_out"]))
        o["ev_start"], o["ev_end"] = cuda.Event(), cuda.Event()
        if self.cuda_graph:
            o["graphs"] = _DriverGraphs()
            o["slots"] = GraphSlots(self.max_graphs)
            o["graph_contexts"] = {}
        self.max_batch = plan.max_batch
        # compile the kernel now, not on the first batch: a missing nvcc is one message at start, not a traceback
        self.accepts_device_input, o["pre"], self.preprocess_fallback = False, None, None
        if self.device_preprocess:
            from fakewatch.runtime.cuda_preprocess import PycudaPreprocessor, compile_or_fallback

            o["pre"], self.preprocess_fallback = compile_or_fallback(lambda: PycudaPreprocessor(self.spec))
            self.accepts_device_input = o["pre"] is not None
            if self.preprocess_fallback:
                log.warning("%s: %s", self.artifact.name, self.preprocess_fallback)

    @staticmethod
    def _tensor_info(trt: Any, engine: Any, name: str) -> TensorInfo:
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = None
        if is_input and any(d < 0 for d in shape):
            profile = tuple(tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
        return TensorInfo(name, is_input, dtype_name(engine.get_tensor_dtype(name)), shape, profile)

    def deactivate_impl(self) -> None:
        if self._ctx is None:
            return
        self._ctx.push()
        try:
            self._release_locked()
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None

    def _release_locked(self) -> None:
        # Free in dependency order with our context current: graphs, preprocessor, buffers, then TRT objects.
        o = self._objs
        if o.get("graphs") is not None:
            o["graphs"].free()
        if o.get("pre") is not None:
            o["pre"].free()
        for key in ("dev_in", "dev_out"):
            if o.get(key) is not None:
                o[key].free()
        for key in ("graphs", "slots", "graph_contexts", "pre", "dev_in", "dev_out", "host_in", "host_out",
                    "ev_start", "ev_end", "context", "engine", "runtime", "stream", "logger"):
            o.pop(key, None)  # the order matters: context before engine before runtime
        self.plan = None

    @contextlib.contextmanager
    def cuda_scope(self) -> Iterator[None]:
        """Make this runner's CUDA context current for the block (any thread)."""
        self._ctx.push()
        try:
            yield
        finally:
            self._ctx.pop()

    # -- inference -------------------------------------------------------------------
    def infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        n = int(batch.shape[0])
        m = run_batch(n, self.plan)          # >= the profile's min: pad, run, drop the padding's outputs
        o = self._objs
        with self.cuda_scope():
            o["host_in"][:n] = batch  # casts to the engine's input dtype (fp16 engines take fp16)
            if m > n:
                o["host_in"][n:m] = 0
            self._cuda.memcpy_htod_async(o["dev_in"], o["host_in"][:m], o["stream"])
            out, ms = self._execute(m)
        return out[:n], ms

    def preprocess_on_device(self, images: Sequence[np.ndarray], boxes: Sequence[Any]) -> int:
        """Fused CUDA preprocessing straight into the engine's input buffer (see fakewatch.runtime.cuda_preprocess)."""
        if not self.is_active:
            raise BackendError("tensorrt runner is not active; call activate() first")
        o = self._objs
        if o.get("pre") is None:
            why = self.preprocess_fallback or "device_preprocess=False"
            raise BackendError(f"fused CUDA preprocessing is off for this runner ({why}); preprocess on the host "
                               f"and call infer()")
        check_batch(len(images), self.plan)
        with self.cuda_scope():
            return o["pre"].enqueue(images, boxes, int(o["dev_in"]), self.plan.input.dtype, o["stream"])

    def infer_prepared(self, n: int) -> np.ndarray:
        """Run the engine on the first ``n`` inputs already in the device buffer (after preprocess_on_device)."""
        if not self.is_active:
            raise BackendError("tensorrt runner is not active; call activate() first")
        m = run_batch(n, self.plan)     # rows n..m-1 hold stale inputs: harmless, their outputs are dropped
        with self.cuda_scope():
            out, ms = self._execute(m)
        self.last_inference_ms = ms
        return out[:n]

    def _execute(self, n: int) -> tuple[np.ndarray, float]:
        o, plan = self._objs, self.plan
        context, stream = o["context"], o["stream"]
        o["ev_start"].record(stream)
        if not self._enqueue_graph(n):
            if not context.set_input_shape(plan.input.name, plan.input.shape_for(n)):
                raise BackendError(f"TensorRT refused input shape {plan.input.shape_for(n)} for {plan.input.name}")
            if not context.execute_async_v3(stream.handle):
                raise BackendError(f"TensorRT execute_async_v3 failed for batch {n} ({self.artifact.name})")
        o["ev_end"].record(stream)
        self._cuda.memcpy_dtoh_async(o["host_out"][:n], o["dev_out"], stream)
        stream.synchronize()
        ms = o["ev_end"].time_since(o["ev_start"])
        return np.asarray(o["host_out"][:n], dtype=np.float32).copy(), float(ms)

    def _enqueue_graph(self, n: int) -> bool:
        """Replay batch ``n``'s graph on its own context, capturing it first (see GraphSlots for why)."""
        graphs = self._objs.get("graphs")
        if graphs is None or self.graph_error:
            return False
        o, plan, stream = self._objs, self.plan, self._objs["stream"]
        action, evicted = o["slots"].slot(n)
        if evicted is not None:
            graphs.drop(evicted)
            o["graph_contexts"].pop(evicted, None)
        if action == "capture":
            ctx = o["engine"].create_execution_context()     # shares the weights; its own activation memory
            if ctx is None:
                raise BackendError(f"TensorRT could not create an execution context for batch {n}'s CUDA graph "
                                   f"(out of GPU memory?); run with cuda_graph=False or a smaller max_graphs")
            ctx.set_tensor_address(plan.input.name, int(o["dev_in"]))
            ctx.set_tensor_address(plan.output.name, int(o["dev_out"]))
            if not ctx.set_input_shape(plan.input.name, plan.input.shape_for(n)):
                raise BackendError(f"TensorRT refused input shape {plan.input.shape_for(n)} for {plan.input.name}")
            # TensorRT needs one ordinary enqueue after a shape change before it can be captured.
            if not ctx.execute_async_v3(stream.handle):
                raise BackendError(f"TensorRT execute_async_v3 failed for batch {n}")
            stream.synchronize()
            try:
                graphs.capture(n, stream.handle, lambda: ctx.execute_async_v3(stream.handle))
            except BackendError as exc:  # e.g. DLA engines or layers that cannot be captured
                o["slots"].forget(n)
                self.graph_error = f"{exc}; running without CUDA graphs"
                return False
            o["graph_contexts"][n] = ctx
        graphs.launch(n, stream.handle)
        return True
