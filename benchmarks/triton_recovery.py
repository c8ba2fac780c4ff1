"""Two ``fakewatch watch`` processes on one Triton server: shared batches, then the server killed and restarted.

    python -m fakewatch.benchmarks.triton_recovery [--cycles 2] [--out benchmarks/results/triton]

Starts ``fakewatch serve`` (the demo model) and two ``fakewatch watch demo --backend triton`` processes. It reads
Triton's metrics while both run (requests vs executions), then SIGKILLs the server's whole process group, waits
``--down`` seconds and starts it again on the same ports, ``--cycles`` times. Per cycle and client it records the
seconds from "server ready again" to that client's first processed frame. The JSON-lines frame records carry
wall-clock ``ts``. It also counts the frames and alerts after the restart and the dropped frames in the final
summary. Writes ``recovery.json`` and ``recovery.md``.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from fakewatch.benchmarks.triton_overhead import DEMO, _Server


def _records(path: Path) -> list[dict]:
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def _wait(cond, timeout_s: float, what: str) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return time.time()
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")


def run(cycles: int, down_s: float, python: str, tmp: Path, delay_us: int = 2000) -> dict:
    from fakewatch.core.triton import parse_metrics

    log = tmp / "serve.log"
    server = _Server(DEMO, python, 8, delay_us, log)
    ports = (server.grpc, server.http, server.metrics)
    server.wait_ready()
    outs = [tmp / f"client{i}.jsonl" for i in range(2)]
    cmd = [sys.executable, "-m", "fakewatch", "watch", "demo", "--backend", "triton", "--triton-url",
           f"grpc://127.0.0.1:{server.grpc}", "--triton-model", "bench", "--no-live", "--frames",
           "--status-interval", "0"]
    procs = [subprocess.Popen([*cmd, "--json", str(o)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for o in outs]
    cycles_out = []
    try:
        _wait(lambda: all(sum(r["type"] == "frame" for r in _records(o)) >= 20 for o in outs), 180,
              "20 frames from each client")
        before = parse_metrics(server.metrics_text())
        time.sleep(10.0)
        after = parse_metrics(server.metrics_text())
        key = ("nv_inference_request_success", "bench"), ("nv_inference_exec_count", "bench")
        merged = {"requests": int(after[key[0]] - before[key[0]]), "executions": int(after[key[1]] - before[key[1]]),
                  "window_s": 10.0}
        for _ in tqdm(range(cycles), desc="kill/restart cycles", unit="cycle"):
            server.kill()
            killed = time.time()
            time.sleep(down_s)
            alive = [p.poll() is None for p in procs]
            server = _Server(DEMO, python, 8, delay_us, log, ports)
            ready = server.wait_ready()
            back = [_wait(lambda o=o: any(r["type"] == "frame" and r["ts"] > ready for r in _records(o)), 120,
                          "frames after the restart") for o in outs]
            first = [min(r["ts"] for r in _records(o) if r["type"] == "frame" and r["ts"] > ready) for o in outs]
            time.sleep(5.0)
            cycles_out.append({"down_s": round(ready - killed, 2), "clients_alive_while_down": alive,
                               "recovery_s": [round(f - ready, 3) for f in first],
                               "frames_5s_after_recovery": [sum(1 for r in _records(o) if r["type"] == "frame"
                                                                and b <= r["ts"] <= b + 5) for o, b in
                                                            zip(outs, back)]})
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        logs = [p.communicate(timeout=120)[0] for p in procs]
        server.stop()
    summaries = [[r for r in _records(o) if r["type"] == "summary"] for o in outs]
    return {"command": "python -m fakewatch.benchmarks.triton_recovery " + " ".join(sys.argv[1:]),
            "model": DEMO.name, "clients": 2, "source": "demo (synthetic faces, 30 fps, paced)",
            "merged_while_both_run": merged, "cycles": cycles_out,
            "exit_codes": [p.returncode for p in procs],
            "dropped": [sum(st["dropped"] for st in s[-1]["streams"].values()) if s else None for s in summaries],
            "frames": [sum(st["frames"] for st in s[-1]["streams"].values()) if s else None for s in summaries],
            "outage_lines": [sum("failed a request" in line for line in lg.splitlines()) for lg in logs]}


def write(res: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recovery.json").write_text(json.dumps(res, indent=2) + "\n")
    m = res["merged_while_both_run"]
    lines = ["# Two watch processes on one Triton server: merged batches, kill/restart recovery", "",
             f"Command: `{res['command']}`. Model {res['model']}, source {res['source']}, all on this machine; "
             f"in flight: {res.get('in_flight', '1 batch')}; server queue delay "
             f"{res.get('max_queue_delay_us', 2000)} us. Load before: `{res.get('load_before', 'not recorded')}`; "
             f"after: `{res.get('load_after', 'not recorded')}`.", "",
             f"While both clients ran ({m['window_s']:g} s): {m['requests']} requests in {m['executions']} "
             f"executions (Triton metrics `nv_inference_request_success` / `nv_inference_exec_count`).", "",
             "| cycle | server down (s) | clients alive while down | recovery after ready (s) | frames in the 5 s "
             "after |", "|---:|---:|---|---|---|"]
    lines += [f"| {i + 1} | {c['down_s']} | {c['clients_alive_while_down']} | {c['recovery_s']} | "
              f"{c['frames_5s_after_recovery']} |" for i, c in enumerate(res["cycles"])]
    lines += ["", f"Exit codes {res['exit_codes']}; frames {res['frames']}; dropped {res['dropped']} (lost batches and "
              f"newest-frame-wins drops); outage lines on stderr {res['outage_lines']}.", ""]
    (out / "recovery.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--down", type=float, default=2.0, help="seconds the server stays dead per cycle")
    ap.add_argument("--python", default=None, help="server interpreter (default: as `fakewatch serve` finds it)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/triton"))
    ap.add_argument("--delay-us", type=int, default=2000,
                    help="the server's dynamic-batcher queue delay (fakewatch serve --max-queue-delay-us)")
    args = ap.parse_args(argv)
    from fakewatch.runtime.serve_cli import server_python

    python = server_python(Path(args.python) if args.python else None)
    from fakewatch.benchmarks.triton_bench import _load

    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="fakewatch-triton-recovery-") as tmp:
        res = run(args.cycles, args.down, python, Path(tmp), args.delay_us)
    res.update(max_queue_delay_us=args.delay_us, load_before=load_before, load_after=_load(),
               in_flight="watch default (2 batches on triton)")
    write(res, args.out)
    print((args.out / "recovery.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
