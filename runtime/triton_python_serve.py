"""``fakewatch serve`` (default ``--server python-backend``): the ``tritonserver`` binary that the nvidia-pytriton
wheel ships, started on a generated model repository whose model is Triton's own *python backend* running a
fakewatch runner (:mod:`fakewatch.runtime.triton_stub_model`).

    <workdir>/models/<name>/config.pbtxt      backend "python", dynamic batcher, the fakewatch contract in parameters
    <workdir>/models/<name>/1/model.py        re-exports fakewatch.runtime.triton_stub_model.TritonPythonModel
    <workdir>/models/<name>/1/serve.json      artifact path, runner backend and options (data only)
    <workdir>/backends/python/                the wheel's python backend + the stub built for this Python

It runs in the server interpreter (``fakewatch serve --python``): the stub embeds that interpreter's libpython and
finds its packages through PATH (the interpreter's bin folder first), as PyTriton does. Nothing of PyTriton's
Python code runs: only its files are used, so the runner sits in the stub process, one shared-memory hop from the
server, instead of PyTriton's three (server -> stub -> proxy -> this process and back).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fakewatch.core.stale import SHM_DIR, remove_dead_owners
from fakewatch.core.triton import model_config_text, preferred_batches

#: the python backend's shared memory with each stub: start big enough for a batch of 16 at 380 px, grow by 16 MB
SHM_DEFAULT_BYTES = 32 * 1024 * 1024
SHM_GROWTH_BYTES = 16 * 1024 * 1024
READY_TIMEOUT_S = 180.0
#: the python backend names its regions <prefix><uuid>; the prefix carries the serve process id
SHM_REGION_PREFIX = "fakewatch_serve_"

MODEL_PY = '''# written by `fakewatch serve`: Triton's python backend imports this file; the model itself is fakewatch's
from fakewatch.runtime.triton_stub_model import TritonPythonModel  # noqa: F401
'''


@dataclass(frozen=True)
class TritonDist:
    """The parts of the nvidia-pytriton wheel this server uses: files only, none of PyTriton's Python."""

    server: Path        # bin/tritonserver
    python_backend: Path   # backends/python (libtriton_python.so, triton_python_backend_utils.py)
    stub: Path          # triton_python_backend_stub built for this interpreter's Python version
    libs: Path          # shared libraries the binary links (nvidia_pytriton.libs)


def find_dist() -> TritonDist:
    """Locate tritonserver and the python-backend stub for this Python; one clear error when they are missing."""
    try:
        from pytriton.utils.distribution import get_libs_path, get_root_module_path
    except ImportError as exc:
        raise RuntimeError(f"fakewatch serve needs the tritonserver binary from the nvidia-pytriton wheel ({exc}); "
                           f"build the server environment with `make pytriton-env`") from None
    root = get_root_module_path() / "tritonserver"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stubs = root / "python_backend_stubs"
    dist = TritonDist(root / "bin" / "tritonserver", root / "backends" / "python",
                      stubs / version / "triton_python_backend_stub", Path(get_libs_path()))
    if not dist.stub.is_file():
        have = sorted(p.name for p in stubs.iterdir()) if stubs.is_dir() else []
        raise RuntimeError(f"nvidia-pytriton has no python-backend stub for Python {version} (it ships {have}); run "
                           f"the server under one of those (--python)")
    missing = [str(p) for p in (dist.server, dist.python_backend / "libtriton_python.so") if not p.is_file()]
    if missing:
        raise RuntimeError(f"the nvidia-pytriton install lacks {missing}; reinstall it (`make pytriton-env`)")
    return dist


def prepare_backends(dist: TritonDist, workdir: Path) -> Path:
    """``workdir/backends`` holding the python backend with the stub for this Python (the wheel keeps stubs for
    several versions apart; Triton expects exactly one next to the backend library)."""
    python = workdir / "backends" / "python"
    shutil.copytree(dist.python_backend, python, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(dist.stub, python / "triton_python_backend_stub")
    return python.parent


def write_repository(cfg, spec, max_batch: int, parameters: dict[str, str], workdir: Path) -> Path:
    """The model repository for ``cfg`` (a triton_serve.ServeConfig); returns its folder."""
    repo = workdir / "models"
    version = repo / cfg.name / "1"
    version.mkdir(parents=True)
    (version / "model.py").write_text(MODEL_PY)
    serve = {"artifact": str(Path(cfg.model).resolve()), "backend": cfg.backend,
             "runner_options": dict(cfg.runner_options)}
    (version / "serve.json").write_text(json.dumps(serve, indent=2))
    text = model_config_text(cfg.name, spec, 'backend: "python"', max_batch=max_batch, input_dtype="float32",
                             preferred=preferred_batches(max_batch, cfg.preferred_batch),
                             max_queue_delay_us=cfg.max_queue_delay_us, instances=cfg.instances, kind="KIND_CPU",
                             parameters=parameters,
                             header=f"written by `fakewatch serve` for {Path(cfg.model).name}: Triton's python "
                                    f"backend runs the fakewatch runner (serve.json)")
    (repo / cfg.name / "config.pbtxt").write_text(text)
    return repo


def server_command(dist: TritonDist, repo: Path, backends: Path, cfg, shm_prefix: str) -> list[str]:
    python_cfg = {"shm-default-byte-size": SHM_DEFAULT_BYTES, "shm-growth-byte-size": SHM_GROWTH_BYTES,
                  "shm-region-prefix-name": shm_prefix}    # unique per server: several may share one machine
    return [str(dist.server), f"--model-repository={repo}", f"--backend-directory={backends}",
            *(f"--backend-config=python,{k}={v}" for k, v in python_cfg.items()),
            f"--grpc-port={cfg.grpc_port}", f"--http-port={cfg.http_port}", f"--metrics-port={cfg.metrics_port}",
            f"--grpc-address={cfg.address}", f"--http-address={cfg.address}", f"--metrics-address={cfg.address}",
            "--allow-metrics=true", "--strict-readiness=true", "--exit-on-error=true", "--log-verbose=0",
            "--disable-auto-complete-config"]


def server_environment(dist: TritonDist, env: dict[str, str]) -> dict[str, str]:
    """``env`` (already with this interpreter's libpython first) + the wheel's libraries, and this interpreter's
    bin folder first on PATH: the stub's embedded Python finds its prefix (a venv's site-packages) through it."""
    env = dict(env)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (env.get("LD_LIBRARY_PATH", ""), str(dist.libs)) if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


WORKDIR_PREFIX = "fakewatch-serve-"


def remove_stale_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove the repositories of earlier ``fakewatch serve`` processes that were killed before cleaning up
    (SIGKILL, power loss): a server restarted by a supervisor for months must not fill /tmp."""
    return remove_dead_owners(Path(tmp or tempfile.gettempdir()), WORKDIR_PREFIX, sep="-")


def remove_stale_server_regions(shm_dir: Path = SHM_DIR) -> list[Path]:
    """Unlink the python backend's shared-memory regions (32 MB and more each) of servers whose ``fakewatch serve``
    process is gone: tritonserver removes them on a clean stop, not when its process group is SIGKILLed."""
    return remove_dead_owners(shm_dir, SHM_REGION_PREFIX)


def die_with_parent():
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies, even by SIGKILL (Linux
    ``PR_SET_PDEATHSIG``): an orphaned tritonserver would keep the ports and the shared memory of a dead serve.
    None where prctl is not available."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl    # resolved before the fork: the child only calls it
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


def _model_ready(cfg, timeout_s: float = 2.0) -> bool:
    host = "127.0.0.1" if cfg.address in ("0.0.0.0", "::", "") else cfg.address
    url = f"http://{host}:{cfg.http_port}/v2/models/{cfg.name}/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def serve_python_backend(cfg, stop: threading.Event, *, spec, max_batch: int, runner_name: str,
                         parameters: dict[str, str], env: dict[str, str]) -> None:
    """Run tritonserver on a generated repository until ``stop`` is set; the repository is removed afterwards."""
    dist = find_dist()
    remove_stale_workdirs()
    remove_stale_server_regions()
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
    proc = None
    try:
        repo = write_repository(cfg, spec, max_batch, parameters, workdir)
        backends = prepare_backends(dist, workdir)
        cmd = server_command(dist, repo, backends, cfg, shm_prefix=f"{SHM_REGION_PREFIX}{os.getpid()}_")
        proc = subprocess.Popen(cmd, env=server_environment(dist, env), preexec_fn=die_with_parent())
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _model_ready(cfg):
            if proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({proc.returncode}) while loading {cfg.name}; see its log "
                                   f"above")
            if stop.wait(0.25):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"model {cfg.name} was not ready after {READY_TIMEOUT_S:g} s; see the log above")
        print(f"fakewatch serve: {cfg.name} ({Path(cfg.model).name} on {runner_name} in Triton's python backend, "
              f"max batch {max_batch}, {cfg.instances} instance(s)) ready: grpc://{cfg.address}:{cfg.grpc_port} "
              f"http://{cfg.address}:{cfg.http_port} metrics http://{cfg.address}:{cfg.metrics_port}/metrics",
              file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            if proc.poll() is not None:
                raise RuntimeError(f"the Triton server process stopped (exit {proc.returncode}); see its log above")
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()          # tritonserver unloads the model (finalize) and stops its stubs
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
