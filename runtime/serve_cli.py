"""``fakewatch serve MODEL``: a real Triton Inference Server for setups without Docker (PyTriton's bundled
``tritonserver``), the model run by its fakewatch runner behind Triton's dynamic batcher.

PyTriton 0.7 needs numpy < 2, which the rest of fakewatch does not; the server therefore runs in its own
interpreter (``--python``, ``$FAKEWATCH_PYTRITON_PYTHON``, or this one when it has PyTriton). ``make pytriton-env``
builds that environment (docs/scale-out.md says which combinations work, here and on JetPack 6).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from fakewatch.runtime.triton_serve import SERVERS

ENV_VAR = "FAKEWATCH_PYTRITON_PYTHON"
#: what `make pytriton-env` builds, relative to the repository root / current directory
DEFAULT_ENV = Path(".venv-pytriton") / "bin" / "python"

_PROBE = ("import numpy, pytriton, fakewatch.runtime.triton_serve; "
          "assert int(numpy.__version__.split('.')[0]) < 2, 'numpy ' + numpy.__version__")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model on a real Triton server (PyTriton) for --backend triton clients",
                       description="Start a Triton Inference Server (PyTriton's bundled tritonserver) with MODEL run "
                                   "by its fakewatch runner behind Triton's dynamic batcher. Clients: `fakewatch watch "
                                   "--backend triton --triton-url grpc://HOST:PORT --triton-model NAME`. Ctrl-C stops.")
    p.add_argument("model", type=Path, help="model artifact (.onnx with its contract, or a TensorRT plan + sidecar)")
    p.add_argument("--name", default="deepfake", help="model name on the server (default deepfake)")
    p.add_argument("--backend", default=None, help="runner inside the server (default: from the model)")
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1; 0.0.0.0 to serve edge nodes)")
    p.add_argument("--max-batch", type=int, default=16, help="Triton max_batch_size (capped by a fixed-batch model)")
    p.add_argument("--max-queue-delay-us", type=int, default=2000,
                   help="dynamic batcher: longest a request waits for others to join its batch (default 2000)")
    p.add_argument("--preferred-batch", type=int, nargs="*", default=[],
                   help="dynamic batcher preferred sizes (default: half and full --max-batch; a request "
                        "already that size runs without waiting for the queue delay)")
    p.add_argument("--instances", type=int, default=1, help="model instances (one runner each)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads per instance (0 = default)")
    p.add_argument("--server", default="python-backend", choices=tuple(SERVERS),
                   help="how Triton hosts the runner: python-backend (default; Triton's python backend runs it, one "
                        "shared-memory hop per batch) or pytriton (PyTriton's proxy forwards batches to the serve "
                        "process)")
    p.add_argument("--python", type=Path, default=None,
                   help=f"interpreter with nvidia-pytriton and numpy<2 (default: ${ENV_VAR}, {DEFAULT_ENV}, or this "
                        f"one)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_run_serve)


def server_python(explicit: Path | None = None) -> str:
    """The interpreter that can run the PyTriton server; one clear error naming what was tried."""
    candidates = [str(explicit)] if explicit else [c for c in (os.environ.get(ENV_VAR), str(DEFAULT_ENV),
                                                              sys.executable) if c]
    tried = []
    for exe in candidates:
        if not Path(exe).is_file():
            tried.append(f"{exe} (missing)")
            continue
        probe = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=120)
        if probe.returncode == 0:
            return exe
        tried.append(f"{exe} ({(probe.stderr.strip().splitlines() or ['failed'])[-1][:160]})")
    raise RuntimeError("no interpreter here can run the PyTriton server; tried " + "; ".join(tried) +
                       f". Build one with `make pytriton-env` (nvidia-pytriton, numpy<2 and fakewatch) and pass "
                       f"--python .venv-pytriton/bin/python or set {ENV_VAR}")


def serve_command(args: argparse.Namespace, python: str) -> list[str]:
    cmd = [python, "-m", "fakewatch.runtime.triton_serve", str(args.model.resolve()), "--name", args.name,
           "--grpc-port", str(args.grpc_port), "--http-port", str(args.http_port),
           "--metrics-port", str(args.metrics_port), "--address", args.address,
           "--max-batch", str(args.max_batch), "--max-queue-delay-us", str(args.max_queue_delay_us),
           "--instances", str(args.instances), "--threads", str(args.threads), "--server", args.server]
    if args.backend:
        cmd += ["--backend", args.backend]
    if args.preferred_batch:
        cmd += ["--preferred-batch", *map(str, args.preferred_batch)]
    return cmd


def _run_serve(args: argparse.Namespace) -> int:
    from fakewatch.runtime.backends import detect_artifact
    from fakewatch.runtime.triton_serve import ServeConfig

    detect_artifact(args.model)   # a missing/corrupt model fails here, before a server starts
    ServeConfig(model=args.model, name=args.name, grpc_port=args.grpc_port, http_port=args.http_port,
                metrics_port=args.metrics_port, max_batch=args.max_batch, max_queue_delay_us=args.max_queue_delay_us,
                preferred_batch=tuple(args.preferred_batch), instances=args.instances, server=args.server)
    python = server_python(args.python)
    # the server process replaces nothing of ours: Ctrl-C reaches both, the child shuts Triton down cleanly
    proc = subprocess.Popen(serve_command(args, python))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return proc.wait()
