"""The server side of ``fakewatch serve``: a real Triton Inference Server (the ``tritonserver`` that the
nvidia-pytriton wheel bundles) whose model executes a fakewatch runner (ONNX Runtime / OpenVINO / TensorRT) with
Triton's dynamic batcher in front. Two ways to host the runner (``--server``, table :data:`SERVERS`):

* ``python-backend`` (default): Triton's own python backend runs the runner in its stub process
  (:mod:`fakewatch.runtime.triton_python_serve`); one shared-memory hop per batch.
* ``pytriton``: PyTriton binds the runner in this process; its proxy model forwards each batch here and back.

This module runs in the *server interpreter*: PyTriton 0.7 needs numpy < 2 and a Python whose shared library
matches the one its backend stub loads (docs/scale-out.md, "Which Python runs the server"). ``fakewatch serve``
starts it with ``python -m fakewatch.runtime.triton_serve ...`` under that interpreter.

The model config Triton serves carries the fakewatch contract in its ``parameters`` (``fakewatch.spec``), the same
way an exported repository does, so ``--backend triton`` clients need no local model file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakewatch.core.stale import SHM_DIR, remove_dead_owners
from fakewatch.core.triton import preferred_batches, spec_parameters


@dataclass(frozen=True)
class ServeConfig:
    """What ``fakewatch serve`` binds; validated once, before anything starts."""

    model: Path
    name: str
    backend: str | None = None
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    address: str = "127.0.0.1"
    max_batch: int = 16
    max_queue_delay_us: int = 2000
    preferred_batch: tuple[int, ...] = ()
    instances: int = 1
    runner_options: dict[str, Any] = field(default_factory=dict)
    server: str = "python-backend"

    def __post_init__(self) -> None:
        problems = []
        for port in ("grpc_port", "http_port", "metrics_port"):
            if not 0 < getattr(self, port) < 65536:
                problems.append(f"--{port.replace('_', '-')} {getattr(self, port)} is not a TCP port")
        if len({self.grpc_port, self.http_port, self.metrics_port}) != 3:
            problems.append(f"gRPC, HTTP and metrics ports must differ (got {self.grpc_port}, {self.http_port}, "
                            f"{self.metrics_port})")
        if self.max_batch < 1:
            problems.append(f"--max-batch must be >= 1, got {self.max_batch}")
        if self.max_queue_delay_us < 0:
            problems.append(f"--max-queue-delay-us must be >= 0, got {self.max_queue_delay_us}")
        if any(not 1 <= b <= self.max_batch for b in self.preferred_batch):
            problems.append(f"--preferred-batch {list(self.preferred_batch)} must lie in 1..{self.max_batch}")
        if self.instances < 1:
            problems.append(f"--instances must be >= 1, got {self.instances}")
        import re
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            problems.append(f"model name {self.name!r}: Triton accepts letters, digits, '.', '_' and '-'")
        if self.server not in SERVERS:
            problems.append(f"--server {self.server!r}: choose one of {tuple(SERVERS)}")
        if problems:
            raise ValueError("fakewatch serve: " + "; ".join(problems))


def libpython_dir() -> str | None:
    """The folder of this interpreter's own libpython, when it has one.

    PyTriton's backend stub links ``libpython3.X.so.1.0`` dynamically; without this folder first on
    LD_LIBRARY_PATH it picks the distribution's (Debian 12: 3.11.2) while importing this interpreter's standard
    library (pyenv: 3.11.7), and multiprocessing fails inside the stub (``'_thread.RLock' object has no attribute
    '_recursion_count'``).
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlib = sysconfig.get_config_var("LDLIBRARY")
    if libdir and ldlib and ldlib.endswith(".so") and (Path(libdir) / ldlib).exists():
        return str(libdir)
    return None


def stub_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default os.environ) with this interpreter's libpython folder first on LD_LIBRARY_PATH."""
    env = dict(os.environ if env is None else env)
    libdir = libpython_dir()
    if libdir:
        parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != libdir]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *parts])
    return env


def _infer_function(runner, spec):
    """A PyTriton ``@batch`` callable that runs one fakewatch runner on the batch Triton's batcher formed."""
    import numpy as np
    from pytriton.decorators import batch

    @batch
    def infer(**inputs):
        x = inputs[spec.input_name]
        return {spec.output_name: np.ascontiguousarray(runner.infer(x), dtype=np.float32)}

    return infer


#: PyTriton waits 1 s for its model stub's config handshake; a busy machine (CI, 2 shared cores) needs longer
HANDSHAKE_TIMEOUT_S = 60.0
#: PyTriton's workspace for a `--server pytriton` serve (default: ~/.cache/pytriton/workspace_*, left by a SIGKILL)
PYTRITON_WORKSPACE_PREFIX = "fakewatch-pytriton-"


def _patient_handshake() -> None:
    """Give PyTriton's handshake with the freshly loaded model stub HANDSHAKE_TIMEOUT_S instead of its fixed 1 s.

    Under load the stub answers later than that; PyTriton then gives up and shuts the server down ("Timeout
    occurred while waiting for config file ...-config.sock", seen here at load average 4)."""
    import pytriton.models.model as model_mod
    from pytriton.proxy.communication import get_config_from_handshake_server

    def patient(socket_path, timeout_s: float = HANDSHAKE_TIMEOUT_S):
        return get_config_from_handshake_server(socket_path, timeout_s=max(timeout_s, HANDSHAKE_TIMEOUT_S))

    model_mod.get_config_from_handshake_server = patient


def serve(cfg: ServeConfig, stop: threading.Event | None = None) -> None:
    """Start Triton with ``cfg.model`` served, block until ``stop`` is set (SIGINT/SIGTERM set it), shut down."""
    SERVERS[cfg.server](cfg, stop or threading.Event())


def _serve_python_backend(cfg: ServeConfig, stop: threading.Event) -> None:
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.triton_python_serve import serve_python_backend

    # load the model here once: a wrong model or backend fails with its own error before Triton starts
    with load_runner(cfg.model, cfg.backend, **cfg.runner_options) as runner:
        spec, limit, runner_name = runner.spec, runner.max_batch, runner.name
    max_batch = min(cfg.max_batch, limit or cfg.max_batch)
    serve_python_backend(cfg, stop, spec=spec, max_batch=max_batch, runner_name=runner_name,
                         parameters=contract_parameters(spec, cfg.model), env=stub_environment())


def _serve_pytriton(cfg: ServeConfig, stop: threading.Event) -> None:
    import numpy as np
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, Triton, TritonConfig, TritonSecurityConfig

    from fakewatch.runtime.backends import load_runner

    _patient_handshake()
    # PyTriton names its servers' shared memory pytrtion<pid>-<hash> (sic) and leaves it behind when SIGKILLed, and
    # its workspace (a copy of the server's backends, ~22 MB) too: that one is named after this process here
    remove_dead_owners(SHM_DIR, "pytrtion", sep="-")
    remove_dead_owners(Path(tempfile.gettempdir()), PYTRITON_WORKSPACE_PREFIX, sep="-")
    workspace = Path(tempfile.gettempdir()) / f"{PYTRITON_WORKSPACE_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    runners = [load_runner(cfg.model, cfg.backend, **cfg.runner_options).activate() for _ in range(cfg.instances)]
    spec = runners[0].spec
    max_batch = min(cfg.max_batch, runners[0].max_batch or cfg.max_batch)
    preferred = list(preferred_batches(max_batch, cfg.preferred_batch))
    triton_cfg = TritonConfig(grpc_port=cfg.grpc_port, http_port=cfg.http_port, metrics_port=cfg.metrics_port,
                              grpc_address=cfg.address, http_address=cfg.address, metrics_address=cfg.address,
                              exit_on_error=True)
    os.environ.update(stub_environment())   # the tritonserver process and its stubs inherit this
    # not `with Triton()`: entering it starts the server, and a model bound to a running server loads at once,
    # before the contract could be added to its config
    # statistics stay readable (as on a stock tritonserver): clients report the server's queue/compute times
    security = TritonSecurityConfig(restricted_endpoints=[e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"])
    triton = Triton(config=triton_cfg, security_config=security, workspace=workspace)
    try:
        triton.bind(model_name=cfg.name, infer_func=[_infer_function(r, spec) for r in runners],
                    inputs=[Tensor(name=spec.input_name, dtype=np.float32, shape=(3, *spec.input_size))],
                    outputs=[Tensor(name=spec.output_name, dtype=np.float32, shape=(spec.num_outputs,))],
                    config=ModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(
                        max_queue_delay_microseconds=cfg.max_queue_delay_us, preferred_batch_size=preferred)))
        _carry_contract(triton, cfg.name, spec, cfg.model)
        triton.run()
        print(f"fakewatch serve: {cfg.name} ({cfg.model.name} on {runners[0].name}, max batch {max_batch}, "
              f"{cfg.instances} instance(s)) ready: grpc://{cfg.address}:{cfg.grpc_port} "
              f"http://{cfg.address}:{cfg.http_port} metrics http://{cfg.address}:{cfg.metrics_port}/metrics",
              file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            if not triton.is_alive():
                raise RuntimeError("the Triton server process stopped; see its log above")
    finally:
        triton.stop()
        for r in runners:
            r.deactivate()
        shutil.rmtree(workspace, ignore_errors=True)


def contract_parameters(spec, artifact: Path) -> dict[str, str]:
    """The config ``parameters`` a served model carries: the contract, and a face detector's decoding section."""
    from fakewatch.core.contract import read_sidecar_doc
    from fakewatch.core.triton import detector_parameters

    params = dict(spec_parameters(spec))
    if spec.output == "face_boxes":     # a face detector: its decoding too (--face-detector grpc://HOST:PORT/NAME)
        section = read_sidecar_doc(artifact).get("face_detector")
        if section is None:
            raise RuntimeError(f"{artifact} is a face detector but its sidecar has no 'face_detector' section")
        params.update(detector_parameters(section))
    return params


def _carry_contract(triton, name: str, spec, artifact: Path) -> None:
    # PyTriton 0.7 has no public hook for config `parameters`: its Model keeps the TritonModelConfig it generated
    # (backend_parameters -> `parameters`) and sends it when run() loads the model; add the contract before that.
    params = contract_parameters(spec, artifact)
    manager = triton._model_manager
    for model in manager.models:
        if model.model_name == name:
            model._get_triton_model_config().backend_parameters.update(params)
            return
    raise RuntimeError(f"PyTriton did not register model {name!r}; cannot attach the fakewatch contract")


#: --server -> how the runner is hosted
SERVERS = {"python-backend": _serve_python_backend, "pytriton": _serve_pytriton}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fakewatch.runtime.triton_serve",
                                description="Serve a fakewatch model on a PyTriton Triton server "
                                            "(what `fakewatch serve` runs in the server interpreter)")
    p.add_argument("model", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--backend", default=None)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-queue-delay-us", type=int, default=2000)
    p.add_argument("--preferred-batch", type=int, nargs="*", default=[])
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--server", default="python-backend", choices=tuple(SERVERS))
    p.add_argument("--spin", action=argparse.BooleanOptionalAction, default=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts: dict[str, Any] = {"intra_op_threads": args.threads} if args.threads else {}
    if not args.spin:
        opts["spin"] = False
    cfg = ServeConfig(model=args.model, name=args.name, backend=args.backend, grpc_port=args.grpc_port,
                      http_port=args.http_port, metrics_port=args.metrics_port, address=args.address,
                      max_batch=args.max_batch, max_queue_delay_us=args.max_queue_delay_us,
                      preferred_batch=tuple(args.preferred_batch), instances=args.instances, runner_options=opts,
                      server=args.server)
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    try:
        serve(cfg, stop)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"fakewatch serve: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
