"""Triton backend vs in-process ONNX Runtime on one machine: throughput, logits, and batch merging across clients.

    python -m fakewatch.benchmarks.triton_overhead [--model M.onnx] [--batch 8] [--rounds 3] \
        [--out benchmarks/results/triton]

Starts a real Triton server (``fakewatch serve``, PyTriton's tritonserver, its own interpreter: ``make
pytriton-env``) on 127.0.0.1 with the same model, then, alternating in rounds so a noisy shared machine hits both
alike:

* ``in-process``: the ONNX Runtime runner in this process, batch N, one call after another (and with
  ``streams=2``, its CPU throughput mode, the fastest in-process configuration here);
* ``triton, 1 in flight``: the triton runner, one request at a time (what ``fakewatch watch`` does);
* ``triton, 2 in flight``: two requests outstanding (``infer_async``), the server overlaps transfer and compute;
* ``clients``: K threads each sending batch-1 requests; Triton's own metrics give executions vs requests
  (requests merged by its dynamic batcher).

Same logits: the max abs difference between in-process and server outputs on the same inputs. Writes
``results.json``, ``results.md`` and ``throughput.png`` (images/s per mode).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

DEMO = Path(__file__).resolve().parents[1] / "runtime" / "assets" / "demo" / "demo_model.onnx"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class _Server:
    """``fakewatch serve`` in its own process group, stopped on exit."""

    def __init__(self, model: Path, python: str, max_batch: int, delay_us: int, log: Path,
                 ports: tuple[int, int, int] | None = None, server: str = "python-backend",
                 extra: Sequence[str] = ()) -> None:
        self.grpc, self.http, self.metrics = ports or _free_ports(3)
        cmd = [sys.executable, "-m", "fakewatch", "serve", str(model), "--name", "bench", "--python", python,
               "--grpc-port", str(self.grpc), "--http-port", str(self.http), "--metrics-port", str(self.metrics),
               "--max-batch", str(max_batch), "--max-queue-delay-us", str(delay_us), "--server", server, *extra]
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 180) -> float:
        """Blocks until the model is ready; returns that wall-clock time."""
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.grpc}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fakewatch serve exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if client.is_model_ready("bench", client_timeout=2.0):
                    client.close()
                    return time.time()
            except Exception:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the server was not ready after {timeout_s} s; see {self.log.name}")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=10) as r:
            return r.read().decode()

    def kill(self) -> None:
        """SIGKILL the server's whole process group: a crash, not a clean stop."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def _throughput(fn, x: np.ndarray, seconds: float) -> float:
    """Images per second running ``fn(x)`` back to back for about ``seconds`` (after one warm-up call)."""
    fn(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(x)
        n += 1
    return n * len(x) / (time.perf_counter() - t0)


def _pipelined(runner, depth: int):
    """``fn(x)`` keeping ``depth`` requests in flight: each call submits one and waits for the oldest."""
    pending: list = []

    def fn(x: np.ndarray) -> None:
        pending.append(runner.infer_async(x))
        if len(pending) >= depth:
            pending.pop(0).result(timeout=30)
    return fn


def _clients(url: str, spec, k: int, seconds: float) -> int:
    """K threads, one runner each, sending batch-1 requests back to back; returns requests sent."""
    from fakewatch.runtime.backends.triton_runner import TritonRunner

    counts = [0] * k
    stop = threading.Event()

    def work(i: int) -> None:
        with TritonRunner.connect(url, "bench") as r:
            x = np.random.default_rng(i).standard_normal((1, 3, *spec.input_size)).astype(np.float32)
            while not stop.is_set():
                r.infer(x)
                counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts)


def run(model: Path, batch: int, rounds: int, seconds: float, python: str, out: Path, delay_us: int) -> dict:
    from fakewatch.core.triton import parse_metrics
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.backends.triton_runner import TritonRunner

    out.mkdir(parents=True, exist_ok=True)
    import tempfile

    log = Path(tempfile.gettempdir()) / f"fakewatch-triton-bench-{os.getpid()}.log"   # server log, not a result
    server = _Server(model, python, max(batch, 8), delay_us, log)
    try:
        server.wait_ready()
        url = f"grpc://127.0.0.1:{server.grpc}"
        local = load_runner(model, "onnxruntime").activate()
        remote = TritonRunner.connect(url, "bench").activate()
        spec = local.spec
        x = np.random.default_rng(0).standard_normal((batch, 3, *spec.input_size)).astype(np.float32)
        diff = max(float(np.max(np.abs(local.infer(xi) - remote.infer(xi))))
                   for xi in (x, x[: max(1, batch // 2)], np.clip(x * 3, -5, 5)))
        sharded = load_runner(model, "onnxruntime", streams=2).activate()   # ORT's own CPU throughput mode
        modes = {"in-process onnxruntime": local.infer, "in-process onnxruntime, 2 streams": sharded.infer,
                 "triton, 1 in flight": remote.infer, "triton, 2 in flight": _pipelined(remote, 2)}
        samples: dict[str, list[float]] = {m: [] for m in modes}
        for _ in tqdm(range(rounds), desc="rounds (each mode once per round)", unit="round"):
            for name, fn in modes.items():
                samples[name].append(_throughput(fn, x, seconds))
        merge = []
        for k in (1, 2, 4):
            before = parse_metrics(server.metrics_text())
            sent = _clients(url, spec, k, seconds)
            after = parse_metrics(server.metrics_text())
            req = after[("nv_inference_request_success", "bench")] - before.get(("nv_inference_request_success",
                                                                                   "bench"), 0)
            ex = after[("nv_inference_exec_count", "bench")] - before.get(("nv_inference_exec_count", "bench"), 0)
            merge.append({"clients": k, "requests_sent": sent, "server_requests": int(req),
                          "server_executions": int(ex), "mean_server_batch": round(req / ex, 2) if ex else None,
                          "img_s": round(sent / seconds, 1)})
        remote.deactivate()
        timing = remote.server_timing
        local.deactivate()
        sharded.deactivate()
    finally:
        server.stop()
    base = float(np.median(samples["in-process onnxruntime"]))
    rows = [{"mode": m, "batch": batch, "img_s_median": round(float(np.median(v)), 1),
             "img_s_runs": [round(s, 1) for s in v], "ratio_vs_in_process": round(float(np.median(v)) / base, 3)}
            for m, v in samples.items()]
    import onnxruntime

    return {"command": "python -m fakewatch.benchmarks.triton_overhead " + " ".join(sys.argv[1:]),
            "model": model.name, "variant": spec.variant, "precision": spec.precision,
            "input_size": list(spec.input_size), "batch": batch, "rounds": rounds, "seconds_per_sample": seconds,
            "max_queue_delay_us": delay_us, "max_abs_logit_diff": diff, "rows": rows, "clients": merge,
            "server_timing_ms": timing,
            "env": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                    "server": "nvidia-pytriton 0.7.0 (bundled tritonserver), python backend -> fakewatch "
                              "onnxruntime runner", "note": "server and client share this machine's CPU"}}


def write(res: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [f"# Triton backend vs in-process ONNX Runtime ({res['model']}, {res['variant']} {res['precision']}, "
             f"{res['input_size'][0]}x{res['input_size'][1]}, batch {res['batch']})", "",
             f"Command: `{res['command']}`. {res['env']['cores']} CPU cores shared by server and client; "
             f"{res['rounds']} rounds x {res['seconds_per_sample']:g} s per mode, medians.", "",
             "| mode | images/s (median) | runs | vs in-process |", "|---|---:|---|---:|"]
    lines += [f"| {r['mode']} | {r['img_s_median']} | {', '.join(map(str, r['img_s_runs']))} | "
              f"{r['ratio_vs_in_process']:.2f}x |" for r in res["rows"]]
    lines += ["", f"Same logits: max abs difference {res['max_abs_logit_diff']:.2e} (goal <= 1e-5).", "",
              f"Batch merging (batch-1 requests from K client threads, dynamic batcher window "
              f"{res['max_queue_delay_us']} us; from Triton's metrics):", "",
              "| clients | requests | executions | mean server batch | images/s |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {c['clients']} | {c['server_requests']} | {c['server_executions']} | {c['mean_server_batch']} | "
              f"{c['img_s']} |" for c in res["clients"]]
    lines += ["", f"Server-side means over the run (Triton statistics): {json.dumps(res['server_timing_ms'])}", ""]
    (out / "results.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8))
    names = [r["mode"].replace(", ", "\n") for r in res["rows"]]
    ax.bar(names, [r["img_s_median"] for r in res["rows"]], color=["#777", "#999", "#2a7", "#16a"],
           label=f"EfficientNet-{res['variant']} {res['precision']}")
    ax.set_ylabel("images / s (median)")
    ax.set_title(f"batch {res['batch']}, {res['model']}, server and client on one {res['env']['cores']}-core CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEMO)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--max-queue-delay-us", type=int, default=2000)
    ap.add_argument("--python", default=None, help="server interpreter (default: as `fakewatch serve` finds it)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/triton"))
    args = ap.parse_args(argv)
    from fakewatch.runtime.serve_cli import server_python

    python = server_python(Path(args.python) if args.python else None)
    res = run(args.model, args.batch, args.rounds, args.seconds, python, args.out, args.max_queue_delay_us)
    write(res, args.out)
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
