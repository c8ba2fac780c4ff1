"""ONNX Runtime backend (the default): CPU everywhere, the CUDA provider when onnxruntime-gpu is installed."""
from __future__ import annotations

from typing import Any

import numpy as np

from fakewatch.runtime.backends.base import BackendError, Runner
from fakewatch.runtime.backends.sharding import pad_rows, resolve_streams, shard_bounds

_DEVICES = ("auto", "cpu", "cuda")


class OnnxRuntimeRunner(Runner):
    """Options: ``device`` auto|cpu|cuda (auto = CUDA when available), ``intra_op_threads`` (0 = ORT default),
    ``streams`` (CPU throughput mode, below), ``spin`` (False: idle intra-op threads sleep at once instead of
    busy-waiting for the next batch; for a runner that shares its cores with a server's network threads).

    ``streams`` > 1 splits every batch into that many shards and runs them at once on one session, each shard on
    ``intra_op_threads`` threads (default 1) - OpenVINO's "throughput streams". ONNX Runtime's convolutions
    (QLinearConv above all) loop over the images of a batch and parallelise only inside each image, which leaves
    cores idle on small feature maps; one image stream per core keeps them busy. Measured at batch 8 on a 2-core
    x86 (benchmarks/results/quant_speed.json): Lite0 FP32 +31 %, INT8 +49 %; B0 FP32 +12 %, INT8 +33 % over one
    2-thread run per batch.
    Batches smaller than ``streams`` use fewer shards; with the CUDA provider it is ignored (one run per batch).
    """

    name = "onnxruntime"

    def __init__(self, artifact, spec, *, device: str = "auto", intra_op_threads: int = 0,
                 streams: int | str = 1, spin: bool = True, **options: Any) -> None:
        super().__init__(artifact, spec, device=device, intra_op_threads=intra_op_threads, streams=streams,
                         spin=spin, **options)
        self.spin = bool(spin)
        if device not in _DEVICES:
            raise ValueError(f"onnxruntime device must be one of {_DEVICES}, got {device!r}")
        self.device = device
        self.intra_op_threads = int(intra_op_threads)
        self.streams = resolve_streams(streams)
        self.providers: list[str] = []
        self._session = None
        self._pool = None
        self._in_dtype = np.float32

    def activate_impl(self) -> None:
        import onnxruntime as ort  # imported here so constructing a runner stays cheap

        available = ort.get_available_providers()
        has_cuda = "CUDAExecutionProvider" in available
        if self.device == "cuda" and not has_cuda:
            raise BackendError(f"onnxruntime here has no CUDAExecutionProvider (providers: {available}); install "
                               f"onnxruntime-gpu instead of onnxruntime, or use --device cpu")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if (
            has_cuda and self.device in ("auto", "cuda")) else ["CPUExecutionProvider"]
        sharded = providers == ["CPUExecutionProvider"] and self.streams > 1
        sess = self._open(ort, providers, self.intra_op_threads or (1 if sharded else 0))
        self._check_io(sess)
        if sharded and self._fixed_batch:   # a fixed-batch export takes exactly max_batch rows: no shards
            sharded = False
            if not self.intra_op_threads:
                sess = self._open(ort, providers, 0)
        self.providers = sess.get_providers()
        self._session = sess
        if sharded:
            from concurrent.futures import ThreadPoolExecutor

            # InferenceSession.run is thread-safe and releases the GIL; one worker per shard
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="ort-stream")

    def _open(self, ort, providers: list[str], threads: int):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            so.intra_op_num_threads = threads
        if not self.spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.artifact), sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise BackendError(f"onnxruntime cannot load {self.artifact}: {exc}") from None

    def _check_io(self, sess) -> None:
        ins = {i.name: i for i in sess.get_inputs()}
        outs = {o.name: o for o in sess.get_outputs()}
        s = self.spec
        if s.input_name not in ins or s.output_name not in outs:
            raise BackendError(f"{self.artifact.name}: contract names input {s.input_name!r} / output "
                               f"{s.output_name!r} but the graph has inputs {list(ins)} and outputs {list(outs)}")
        shape = ins[s.input_name].shape
        if len(shape) != 4 or [d for d in shape[1:] if isinstance(d, int)] != [3, *s.input_size]:
            raise BackendError(f"{self.artifact.name}: graph input shape {shape} does not match the contract "
                               f"[N, 3, {s.input_size[0]}, {s.input_size[1]}]")
        if isinstance(shape[0], int) and shape[0] > 0:
            self.max_batch = shape[0]  # a fixed-batch export accepts exactly this many (we pad smaller batches)
        self._fixed_batch = isinstance(shape[0], int) and shape[0] > 0
        self._in_dtype = np.float16 if ins[s.input_name].type == "tensor(float16)" else np.float32

    def infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        n = batch.shape[0]
        x = np.ascontiguousarray(batch, dtype=self._in_dtype)
        if self._fixed_batch:
            x = pad_rows(x, self.max_batch)
        if self._pool is None or len(x) < 2:
            out = self._run(x)
        else:
            shards = [np.ascontiguousarray(x[a:b]) for a, b in shard_bounds(len(x), self.streams)]
            out = np.concatenate(list(self._pool.map(self._run, shards)))
        return np.asarray(out[:n], dtype=np.float32).reshape(n, -1), None

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([self.spec.output_name], {self.spec.input_name: x})[0]

    def deactivate_impl(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._session = None
