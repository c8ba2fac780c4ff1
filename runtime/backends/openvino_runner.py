"""OpenVINO backend (``pip install 'fakewatch[openvino]'``): Intel's runtime reads the same ONNX artifacts directly.

Why a second CPU backend: OpenVINO executes the ``openvino`` quantization recipe's Q/DQ graph as real int8 kernels
(VNNI/AMX), including the depthwise convolutions that ONNX Runtime's MLAS barely speeds up. Measured at batch 8 on
this 2-core Xeon (benchmarks/results/quant_speed.json, four runs): EfficientNet-Lite0 FP32 290-330 img/s, INT8
760-880 img/s (2.61-2.69x); ONNX Runtime reaches 1.80-1.87x on the same model.

Options:

* ``device``: ``cpu`` (default; ``auto`` means the same) or another OpenVINO device name (``gpu``, ``npu``).
* ``streams``: 1 = latency mode (one request per batch on all cores); N or ``"auto"`` = throughput mode, the batch
  split into N even shards run at once on N OpenVINO streams (the ONNX Runtime runner's ``streams`` does the same).
* ``threads``: inference threads, per stream in throughput mode like the ONNX Runtime runner (0 = OpenVINO's
  choice).
* ``inference_precision``: ``f32`` by default. OpenVINO's own default on CPUs with AMX/AVX512-BF16 is bf16, which
  changes an FP32 artifact's numbers (and its measured speed) behind the contract's back; pass ``bf16`` to opt in.
* ``shapes``: ``static`` (default) compiles the model once per shard size it meets (measured 8-10 % faster than
  dynamic shapes; compiling Lite0 takes ~0.2 s), ``dynamic`` compiles once for any batch size.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fakewatch.runtime.backends.base import BackendError, Runner
from fakewatch.runtime.backends.sharding import pad_rows, resolve_streams, shard_bounds

_PRECISIONS = ("f32", "bf16", "f16")
_SHAPES = ("static", "dynamic")
_MAX_COMPILED = 16     # static shapes: at most this many compiled sizes kept (a live pipeline sees 1..max_batch)


def openvino_device(device: str) -> str:
    """fakewatch's device words -> an OpenVINO device name ("cpu"/"auto" -> "CPU", "gpu.1" -> "GPU.1")."""
    return "CPU" if device in ("auto", "cpu") else str(device).upper()


class OpenVINORunner(Runner):
    name = "openvino"

    def __init__(self, artifact, spec, *, device: str = "cpu", streams: int | str = 1, threads: int = 0,
                 inference_precision: str = "f32", shapes: str = "static", **options: Any) -> None:
        super().__init__(artifact, spec, device=device, streams=streams, threads=threads,
                         inference_precision=inference_precision, shapes=shapes, **options)
        if inference_precision not in _PRECISIONS:
            raise ValueError(f"openvino inference_precision must be one of {_PRECISIONS}, got {inference_precision!r}")
        if shapes not in _SHAPES:
            raise ValueError(f"openvino shapes must be one of {_SHAPES}, got {shapes!r}")
        if int(threads) < 0:
            raise ValueError(f"openvino threads must be >= 0, got {threads!r}")
        self.device = openvino_device(device)
        self.streams = resolve_streams(streams, "openvino")
        self.threads = int(threads)
        self.inference_precision = inference_precision
        self.shapes = shapes
        self.version = ""
        self.config: dict[str, str] = {}
        self._core = self._model = None
        self._compiled: dict[int | None, tuple[Any, list[Any]]] = {}   # shard size (None = dynamic) -> model, reqs

    # -- lifecycle -----------------------------------------------------------------------
    def activate_impl(self) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendError(f"backend 'openvino' needs the openvino package ({exc}); pip install "
                               f"'fakewatch[openvino]', or run {self.artifact.name} with --backend "
                               f"onnxruntime") from None
        self.version = ov.__version__.split("-")[0]     # "2026.4.1-22982-<hash>-releases/..." -> "2026.4.1"
        core = ov.Core()
        available = list(core.available_devices)
        if not any(d == self.device or d.startswith(self.device + ".") for d in available):
            raise BackendError(f"OpenVINO {self.version} has no device {self.device!r} here (devices: {available}); "
                               f"use --device cpu")
        try:
            model = core.read_model(str(self.artifact))
        except Exception as exc:     # OpenVINO raises RuntimeError subclasses with the parser's message
            raise BackendError(f"openvino cannot read {self.artifact}: {exc}") from None
        self._check_io(model)
        hint = "LATENCY" if self.streams == 1 else "THROUGHPUT"
        self.config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": self.inference_precision}
        if self.streams > 1:
            self.config["NUM_STREAMS"] = str(self.streams)
        if self.threads:
            self.config["INFERENCE_NUM_THREADS"] = str(self.threads * self.streams)
        self._core, self._model = core, model
        self._compiled = {}
        self._compile(None if self.shapes == "dynamic" else 1)   # fail here, not on the first frame

    def _check_io(self, model) -> None:
        s = self.spec
        ins = {n: p for p in model.inputs for n in p.get_names()}
        outs = {n: p for p in model.outputs for n in p.get_names()}
        if s.input_name not in ins or s.output_name not in outs:
            raise BackendError(f"{self.artifact.name}: contract names input {s.input_name!r} / output "
                               f"{s.output_name!r} but the graph has inputs {sorted(ins)} and outputs {sorted(outs)}")
        shape = ins[s.input_name].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in shape]
        if len(dims) != 4 or dims[1:] != [3, *s.input_size]:
            raise BackendError(f"{self.artifact.name}: graph input shape {shape} does not match the contract "
                               f"[N, 3, {s.input_size[0]}, {s.input_size[1]}]")
        if dims[0] is not None:
            # a fixed-batch export: one size only, no shards (the ONNX Runtime runner pads the same way)
            self.max_batch, self.shapes, self.streams = dims[0], "fixed", 1
        self._in_dtype = np.float16 if ins[s.input_name].get_element_type().get_type_name() == "f16" else np.float32

    def _compile(self, size: int | None):
        """The compiled model (and one infer request per stream) for shard ``size`` (None = any size)."""
        key = None if self.shapes in ("dynamic", "fixed") else size
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        model = self._model
        if key is not None:
            model = model.clone()
            model.reshape({self.spec.input_name: [key, 3, *self.spec.input_size]})
        try:
            compiled = self._core.compile_model(model, self.device, self.config)
        except Exception as exc:
            raise BackendError(f"openvino cannot compile {self.artifact.name} for {self.device} "
                               f"({self.config}): {exc}") from None
        requests = [compiled.create_infer_request() for _ in range(self.streams)]
        if len(self._compiled) >= _MAX_COMPILED:
            self._compiled.pop(next(iter(self._compiled)))
        self._compiled[key] = (compiled, requests)
        return compiled, requests

    # -- inference -----------------------------------------------------------------------
    def infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        n = batch.shape[0]
        x = np.ascontiguousarray(batch, dtype=self._in_dtype)
        if self.shapes == "fixed":
            x = pad_rows(x, self.max_batch)
        shards = [np.ascontiguousarray(x[a:b]) for a, b in shard_bounds(len(x), self.streams)]
        used = []
        for i, shard in enumerate(shards):
            _compiled, requests = self._compile(len(shard))
            req = requests[i]
            req.start_async({self.spec.input_name: shard}, share_inputs=True)
            used.append(req)
        outs = []
        for req in used:                # shards stay referenced until their request is done (shared inputs)
            req.wait()
            outs.append(np.array(req.get_tensor(self.spec.output_name).data, dtype=np.float32))
        out = np.concatenate(outs) if len(outs) > 1 else outs[0]
        return out[:n].reshape(n, -1), None

    def deactivate_impl(self) -> None:
        self._compiled = {}
        self._model = self._core = None
