"""Triton Inference Server backend: batches go over gRPC to a (shared, remote) Triton server.

The contract comes from the server's model config (``parameters['fakewatch.spec']``, written by
``fakewatch export triton`` and ``fakewatch serve``), so a client needs no local model file:
``fakewatch watch --backend triton --triton-url grpc://gpu-host:8001 --triton-model deepfake``.

Requests are asynchronous, all on one gRPC bidirectional stream by default (:mod:`.triton_stream`; ``stream=False``:
one ``async_infer`` call each): the calling thread waits on an event with the GIL released, the reader threads keep
decoding, and :meth:`TritonRunner.infer_async` lets a caller keep several batches in flight. A server
that is down or restarting does not stop a run: the failed batch raises :class:`BackendUnavailable` (the pipeline
counts its frames as dropped), the runner waits a growing backoff (0.2 s doubling to 1 s) before trying a fresh
connection, and every outage is recorded in :attr:`TritonRunner.outages`.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout   # a builtin TimeoutError only from 3.11
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.core.triton import TritonUrl, input_wire_dtype, max_batch_size, parse_triton_url, spec_from_config
from fakewatch.runtime.backends.base import BackendError, BackendUnavailable, Runner
from fakewatch.runtime.backends.triton_shm import LOOPBACK, InputSlots
from fakewatch.runtime.backends.triton_stats import ServerTimingSampler, StatsSnapshot
from fakewatch.runtime.backends.triton_stream import RequestStream
from fakewatch.runtime.inflight import ASYNC_IN_FLIGHT
from fakewatch.runtime.latency import SERVER_STAGES

#: gRPC status codes that mean "the request itself is wrong": retrying cannot help
_FATAL_STATUS = ("StatusCode.INVALID_ARGUMENT", "StatusCode.UNIMPLEMENTED", "StatusCode.PERMISSION_DENIED",
                 "StatusCode.UNAUTHENTICATED")
SHM_MODES = ("auto", "on", "off")
#: gRPC channel options: reconnect attempts every <= 1 s (gRPC's own default backs off up to 120 s)
_CHANNEL_ARGS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                 ("grpc.max_reconnect_backoff_ms", 1000)]


@dataclass
class Outage:
    """One stretch of time the server did not answer (monotonic seconds)."""

    down_at: float
    up_at: float | None = None
    batches_lost: int = 0
    error: str = ""


def _import_grpc():
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as exc:
        raise BackendError(f"the triton backend needs tritonclient ({exc}); pip install 'fakewatch[triton]'") \
            from None
    return grpcclient


def fetch_config(url: TritonUrl, model: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The model's config (JSON form) from a running server; one clear error when it cannot be had."""
    grpcclient = _import_grpc()
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url.target, channel_args=_CHANNEL_ARGS)
    try:
        try:
            if not client.is_server_live(client_timeout=timeout_s):
                raise BackendUnavailable(f"Triton server at {url} is not live yet")
            return client.get_model_config(model, as_json=True, client_timeout=timeout_s)["config"]
        except InferenceServerException as exc:
            msg = str(exc.message() or exc)
            if "not found" in msg or "unknown model" in msg.lower():
                try:
                    index = {m.get("name"): m.get("state", "")
                             for m in client.get_model_repository_index(as_json=True)["models"]}
                except (InferenceServerException, KeyError):
                    index = None
                if index is None or model in index:
                    # still loading (listed, not READY), or a server that hides its index (PyTriton) and may be
                    # loading it now: connect() waits for it; a model that never appears ends in this error
                    why = "the server does not list its models" if index is None else \
                        f"state {index[model] or 'unknown'}"
                    raise BackendUnavailable(f"Triton server at {url} has no model {model!r} ready ({why}); check "
                                             f"--triton-model") from None
                raise BackendError(f"Triton server at {url} has no model {model!r}; it serves "
                                   f"{sorted(n for n in index if n) or 'none'} (pass one of them with "
                                   f"--triton-model)") from None
            raise BackendUnavailable(f"Triton server at {url} did not answer ({exc.status()}: {msg}); is it "
                                     f"running? (`fakewatch serve MODEL` or the tritonserver container)") from None
    finally:
        client.close()


class TritonRunner(Runner):
    """Options: ``url`` (grpc://host:port), ``model`` (name on the server), ``timeout_s`` per request,
    ``connect_timeout_s`` (how long :meth:`connect` waits for a server that is still starting), ``stats_interval_s``
    (how often Triton's statistics are sampled for the server_queue / server_compute stages; 0 = never), ``shm``
    (auto|on|off: input batches through system shared memory, runtime/backends/triton_shm.py; auto = for a
    loopback URL, falling back to gRPC bytes when the server cannot map it), ``stream`` (default true: all requests
    on one gRPC bidirectional stream instead of one call each, runtime/backends/triton_stream.py)."""

    name = "triton"

    def __init__(self, artifact: str | Path, spec: ModelSpec, *, url: str = "grpc://127.0.0.1:8001",
                 model: str = "deepfake", timeout_s: float = 5.0, backoff_s: tuple[float, float] = (0.2, 1.0),
                 stats_interval_s: float = 0.5, shm: str = "auto", stream: bool = True, **options: Any) -> None:
        super().__init__(artifact, spec, url=url, model=model, timeout_s=timeout_s, shm=shm, stream=stream,
                         **options)
        if shm not in SHM_MODES:
            raise ValueError(f"triton shm must be one of {SHM_MODES}, got {shm!r}")
        if not isinstance(stream, bool):
            raise ValueError(f"triton stream must be true or false, got {stream!r}")
        self.stream = stream
        self._stream: RequestStream | None = None
        self._retired: list[Any] = []        # clients replaced after a failure, closed from the calling thread
        self.shm = shm
        self.shm_note = ""                   # why shared memory is off, when auto turned it off
        self._slots: InputSlots | None = None
        self._shm_retry_at = 0.0
        if timeout_s <= 0:
            raise ValueError(f"triton timeout must be > 0 s, got {timeout_s}")
        if stats_interval_s < 0:
            raise ValueError(f"triton stats interval must be >= 0 s (0 = off), got {stats_interval_s}")
        self.stats_interval_s = float(stats_interval_s)
        self._sampler: ServerTimingSampler | None = None
        self._stats_client = None
        self.url = parse_triton_url(url)
        self.model = model
        self.timeout_s = float(timeout_s)
        self.backoff_s = backoff_s
        self.outages: list[Outage] = []
        self.server_timing: dict[str, float] = {}
        self._client = None
        self._grpc = None
        self._wire_dtype = "FP32"
        self._retry_at = 0.0
        self._backoff = backoff_s[0]
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction from a server
    @classmethod
    def connect(cls, url: str, model: str, *, connect_timeout_s: float = 30.0, **options: Any) -> "TritonRunner":
        """A runner for ``model`` on the server at ``url``, its contract read from the server's model config.

        Waits up to ``connect_timeout_s`` for a server that is still starting (edge nodes often boot first)."""
        parsed = parse_triton_url(url)
        deadline = time.monotonic() + connect_timeout_s
        delay = 0.2
        while True:
            try:
                config = fetch_config(parsed, model)
                break
            except BackendUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise BackendError(f"{exc} (waited {connect_timeout_s:g} s)") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        spec = spec_from_config(config, where=f"model {model!r} at {parsed}")
        runner = cls(Path(f"{model}@{parsed.target}"), spec, url=str(parsed), model=model, **options)
        runner._apply_config(config)
        return runner

    def _apply_config(self, config: dict[str, Any]) -> None:
        self.max_batch = max_batch_size(config) or None
        self._wire_dtype = input_wire_dtype(config, self.spec.input_name)

    # ------------------------------------------------------------------ lifecycle
    def activate_impl(self) -> None:
        self._grpc = _import_grpc()
        config = fetch_config(self.url, self.model, self.timeout_s)
        served = spec_from_config(config, where=f"model {self.model!r} at {self.url}")
        if served != self.spec:
            raise BackendError(f"model {self.model!r} at {self.url} now serves another contract "
                               f"({served.variant}, {served.precision}) than this runner was made for "
                               f"({self.spec.variant}, {self.spec.precision}); restart the client")
        self._apply_config(config)
        self._client = self._new_client()
        self._setup_shm()
        if self.stats_interval_s > 0:
            self._stats_client = self._new_client()     # its own channel: the sampler thread never shares one
            self._sampler = ServerTimingSampler(self._snapshot, self.stats_interval_s).start()

    def _new_client(self):
        return self._grpc.InferenceServerClient(self.url.target, channel_args=_CHANNEL_ARGS)

    def _setup_shm(self) -> None:
        if self.shm == "off" or (self.shm == "auto" and self.url.host not in LOOPBACK):
            self.shm_note = "off" if self.shm == "off" else f"off: {self.url.host} is not this machine"
            return
        item = 3 * self.spec.height * self.spec.width * (2 if self._wire_dtype == "FP16" else 4)
        slots = None
        try:
            slots = InputSlots.for_batches(self.max_batch or 16, item, in_flight=ASYNC_IN_FLIGHT,
                                           tag=f"{id(self):x}")
            if slots is None:
                raise ValueError(f"a batch of {self.max_batch} inputs needs more than the per-runner cap")
            slots.register(self._client, self.timeout_s)
        except Exception as exc:   # a server in another IPC namespace (Docker without --ipc=host), no /dev/shm
            if slots is not None:
                slots.close()
            text = getattr(exc, "message", lambda: None)() or str(exc)
            if self.shm == "on":
                raise BackendError(f"--triton-shm on: the Triton server at {self.url} cannot use this machine's "
                                   f"system shared memory ({text}); run it on this machine (Docker: --ipc=host) "
                                   f"or pass --triton-shm off") from None
            self.shm_note = f"off: {text[:200]}"
            return
        self._slots = slots
        self.shm_note = f"on ({slots.slots} x {slots.slot_bytes / 1e6:.1f} MB)"

    def deactivate_impl(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if self._stats_client is not None:
            self._stats_client.close()
            self._stats_client = None
        if self._client is not None:
            try:
                self.server_timing = self.fetch_server_timing()
            except Exception:  # a dead server has no statistics; the run's results stand without them
                self.server_timing = {}
            if self._stream is not None:
                self._stream.close()
                self._stream = None
            if self._slots is not None:
                self._slots.close(self._client)
                self._slots = None
            self._client.close()
            self._client = None
        self._close_retired()

    def _close_retired(self) -> None:
        """Close clients replaced after a failure. Never from a gRPC callback: closing a stream joins its reader
        thread, which is where a stream's callbacks run."""
        with self._lock:
            retired, self._retired = self._retired, []
        for client in retired:
            if self._stream is not None and self._stream.client is client:
                self._stream.close()
                self._stream = None
            try:
                client.close()
            except Exception:    # already closed or its channel is gone: nothing to release
                pass

    # ------------------------------------------------------------------ inference
    def infer_async(self, batch: np.ndarray) -> Future:
        """Send one batch without waiting; the Future yields (N, num_outputs) float32 logits or raises
        BackendUnavailable / BackendError."""
        fut: Future = Future()
        if self._retired:
            self._close_retired()
        now = time.monotonic()
        if now < self._retry_at:
            self._lost()
            fut.set_exception(BackendUnavailable(
                f"Triton server at {self.url} unreachable; retrying in {self._retry_at - now:.1f} s"))
            return fut
        grpc = self._grpc
        x = np.ascontiguousarray(batch, dtype=np.float16 if self._wire_dtype == "FP16" else np.float32)
        inp = grpc.InferInput(self.spec.input_name, list(x.shape), self._wire_dtype)
        slots = self._shm_slots(now)
        offset = slots.put(x) if slots is not None else None
        if offset is not None:
            inp.set_shared_memory(slots.name, x.nbytes, offset=offset)
        else:   # remote server, shared memory off, or every slot in flight
            inp.set_data_from_numpy(x)
        out = grpc.InferRequestedOutput(self.spec.output_name)
        client = self._client

        def done(result, error) -> None:
            if offset is not None:
                slots.release(offset)        # the server has read it (or never will)
            if fut.done():                   # wait() gave up on it already
                return
            if error is not None:
                _settle(fut, error=self._failed(error, client))
                return
            self._recovered()
            if self._sampler is not None:
                self._sampler.batch_done()
            logits = result.as_numpy(self.spec.output_name)
            _settle(fut, np.asarray(logits, dtype=np.float32).reshape(x.shape[0], -1))

        try:
            if self.stream:
                self._open_stream(client).send([inp], [out], done)
            else:
                client.async_infer(self.model, [inp], done, outputs=[out], client_timeout=self.timeout_s)
        except Exception as exc:   # the channel or stream is gone (closed client): same path as a failed request
            if offset is not None:
                slots.release(offset)
            _settle(fut, error=self._failed(exc, client))
        return fut

    def _open_stream(self, client) -> RequestStream:
        """The stream on ``client``, opened again when the last one failed (from the calling thread only)."""
        current = self._stream
        if current is not None and not current.broken and current.client is client:
            return current
        if current is not None:   # cancelled here, on the calling thread: before a new start_stream on the same
            current.close()       # client, and never left to a plain client.close(), which would wait on it
        self._stream = RequestStream(client, self.model)
        return self._stream

    def _shm_slots(self, now: float) -> InputSlots | None:
        """The shared-memory slots when registered with the server; re-registers after a restart (at most every
        2 s, from the calling thread, never from a gRPC callback)."""
        slots = self._slots
        if slots is None or slots.registered:
            return slots
        if now < self._shm_retry_at:
            return None
        try:
            slots.register(self._client, min(self.timeout_s, 2.0))
        except Exception:   # still restarting: this batch goes as gRPC bytes
            self._shm_retry_at = now + 2.0
            return None
        return slots

    def wait(self, fut: Future) -> np.ndarray:
        """The logits of a Future from :meth:`infer_async`; a request that never answers fails like a dead server."""
        try:
            return fut.result(timeout=self.timeout_s + 1.0)
        except (FutureTimeout, TimeoutError):
            error = self._failed(TimeoutError(f"no answer in {self.timeout_s:g} s"))
            _settle(fut, error=error)       # a late answer is ignored (done() sees it settled)
            raise error from None

    def infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        return self.wait(self.infer_async(batch)), None

    # ------------------------------------------------------------------ failures and recovery
    def _failed(self, error: BaseException, client: Any = None) -> BackendError:
        """The error to raise for a failed request on ``client`` (None: the current one). A failure on the current
        client starts or extends an outage, backs off and replaces the client; one on a client already replaced
        (other requests of the same outage) only counts its batch."""
        status = getattr(error, "status", lambda: None)()
        text = getattr(error, "message", lambda: None)() or str(error)
        if self._slots is not None:
            self._slots.registered = False   # a restarted server forgot the region: register again before use
        if status in _FATAL_STATUS and "shared memory" not in text:
            return BackendError(f"Triton rejected the request for {self.model!r} at {self.url}: {status}: {text}")
        with self._lock:
            now = time.monotonic()
            current = client is None or client is self._client
            if current and (not self.outages or self.outages[-1].up_at is not None):
                self.outages.append(Outage(down_at=now, error=f"{status or type(error).__name__}: {text}"[:300]))
                self._backoff = self.backoff_s[0]
            if self.outages:
                self.outages[-1].batches_lost += 1
            if current:
                self._retry_at = now + self._backoff
                self._backoff = min(self._backoff * 2, self.backoff_s[1])
                if self._client is not None:   # a fresh channel: no stale gRPC backoff; the old one is closed
                    self._retired.append(self._client)   # by the calling thread (this may be a stream's reader)
                self._client = self._new_client()
        return BackendUnavailable(f"Triton server at {self.url} failed a request ({status or type(error).__name__}"
                                  f": {text[:200]}); frames of this batch are dropped, retrying")

    def _lost(self) -> None:
        with self._lock:
            if self.outages and self.outages[-1].up_at is None:
                self.outages[-1].batches_lost += 1

    def _recovered(self) -> None:
        with self._lock:
            if self.outages and self.outages[-1].up_at is None:
                self.outages[-1].up_at = time.monotonic()
            self._backoff = self.backoff_s[0]
            self._retry_at = 0.0

    # ------------------------------------------------------------------ server-side timing
    def _snapshot(self) -> StatsSnapshot:
        stats = self._stats_client.get_inference_statistics(self.model, as_json=True,
                                                             client_timeout=min(self.timeout_s, 2.0))
        return StatsSnapshot.from_json(stats, self.model)

    def server_stage_ms(self) -> dict[str, float]:
        """Mean server queue and compute ms per request over the last sampled interval ({} until known)."""
        latest = self._sampler.latest if self._sampler is not None else {}
        return {k: latest[k] for k in SERVER_STAGES if k in latest}

    def fetch_server_timing(self) -> dict[str, float | None]:
        """Triton's own cumulative statistics for this model: mean queue and compute ms per request/execution."""
        stats = self._client.get_inference_statistics(self.model, as_json=True, client_timeout=self.timeout_s)
        entry = (stats.get("model_stats") or [{}])[0]
        inf = entry.get("inference_stats", {})

        def ms(key: str) -> float:
            part = inf.get(key, {})
            n = int(part.get("count", 0) or 0)
            return round(int(part.get("ns", 0) or 0) / n / 1e6, 3) if n else None

        return {"requests": int(inf.get("success", {}).get("count", 0) or 0),
                "executions": int(entry.get("execution_count", 0) or 0),
                "queue_ms": ms("queue"), "compute_input_ms": ms("compute_input"),
                "compute_infer_ms": ms("compute_infer"), "compute_output_ms": ms("compute_output")}


def _settle(fut: Future, result: Any = None, *, error: BaseException | None = None) -> None:
    """Complete ``fut`` unless it is complete already (an answer that arrives after wait() gave up on it)."""
    try:
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)
    except InvalidStateError:
        pass
