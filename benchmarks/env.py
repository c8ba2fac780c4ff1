"""What every benchmark result records about where and how it was measured.

Machine (CPU model, logical/physical cores, memory, GPU if any), library versions, the exact command, a UTC
timestamp and the 1-minute load average (other processes on a shared machine make timings noisy; the load average
at start and end tells a reader how quiet the machine was).
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
from typing import Any, Sequence

# Distributions whose versions change timings; missing ones are recorded as null, not guessed.
_LIBRARIES = ("fakewatch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "torchvision",
              "timm", "opencv-python", "tensorrt", "pycuda", "cupy-cuda12x", "matplotlib", "psutil")


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def physical_cores() -> int | None:
    try:
        import psutil
        return psutil.cpu_count(logical=False)
    except Exception:
        return None


def usable_cores() -> int:
    """Cores this process may run on (cgroup/affinity aware where the OS tells us)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        import psutil
        return round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:
        return None


def load_average_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def gpus() -> list[str]:
    """GPU names from nvidia-smi (desktop/server) or the Jetson model file; empty list when there is none."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0:
                return [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        with open("/proc/device-tree/model") as fh:  # Jetson boards: "NVIDIA Jetson Orin Nano ..."
            model = fh.read().strip("\x00\n ")
            if "jetson" in model.lower():
                return [model]
    except OSError:
        pass
    return []


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
        return list(ort.get_available_providers())
    except Exception:
        return []


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cores": usable_cores(),
        "memory_gib": memory_gib(),
        "gpus": gpus(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
    }


def command_line(argv: Sequence[str] | None = None) -> str:
    """``fakewatch <argv>`` shell-quoted; without ``argv`` (called from Python) the interpreter's own argv."""
    if argv is None:
        return "python: " + " ".join(shlex.quote(a) for a in sys.argv)
    return " ".join(shlex.quote(a) for a in ["fakewatch", *argv])


def invocation() -> str:
    """The process's literal argv (what was typed, when run from a shell)."""
    return " ".join(shlex.quote(a) for a in sys.argv)


def git_commit() -> str | None:
    """The project's git commit (with "-dirty" when the working tree has changes), None outside a checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def environment(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The full record written into every result file (``load_avg_1m_end`` is filled in when the run ends)."""
    return {
        "timestamp_utc": utc_now(),
        "command": command_line(argv),
        "invocation": invocation(),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "libraries": library_versions(),
        "onnxruntime_providers": ort_providers(),
        "load_avg_1m_start": load_average_1m(),
        "load_avg_1m_end": None,
        "note": ("wall-clock timings on a possibly shared machine: other processes may have been running; "
                 "see the 1-minute load average at start and end"),
    }
