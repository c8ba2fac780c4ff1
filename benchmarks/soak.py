"""Soak + chaos run: `fakewatch watch` on 8 streams for a long time while the RTSP server is killed and restarted.

    python -m fakewatch.benchmarks.soak --duration 1800 --restart-every 60 --out benchmarks/results/soak

What runs: one real gst-rtsp-server (tests/streams/rtsp_server.py under the system python3, which has GStreamer's
`gi`) serving ``--rtsp`` mount points, plus ``--files`` looped MP4 recordings of the demo source (a real face with
scheduled self-blended fakes, so REAL/FAKE alerts keep coming). `fakewatch watch` runs them in a child process,
exactly as deployed, writing JSON-lines. Every ``--restart-every`` seconds the server is SIGKILLed (a crash, no RTSP
TEARDOWN) and started again on the same port.

What is measured: the child's RSS, open fds and threads from /proc every ``--sample-every`` s (CSV + PNG with the
restarts marked), the time from each server restart to every RTSP stream's next ``live`` event, state alerts per
window, and how the child ended. The verdict (JSON + Markdown) checks the goals of issue 16: RSS growth <= 5 %
after the first minute, fds/threads flat, every restart followed by ``live`` within 5 s, zero crashes, alerts
continue. Wall-clock figures on a shared machine: the load average is recorded at start and end.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]
SERVER_SCRIPT = REPO / "tests" / "streams" / "rtsp_server.py"
SYSTEM_PYTHON = os.environ.get("FAKEWATCH_RTSP_PYTHON", "/usr/bin/python3")


@dataclass(frozen=True)
class SoakGoals:
    rss_growth_pct: float = 5.0       # RSS at the end vs. just after the first minute
    fd_slack: int = 4                 # fds/threads "flat": last quarter's max <= reference window's max + slack
    thread_slack: int = 4
    live_within_s: float = 5.0        # server READY -> each RTSP stream's next 'live' event
    alert_window_s: float = 120.0     # at least one state alert from the file streams in every such window


@dataclass
class SoakConfig:
    duration_s: float = 1800.0
    restart_every_s: float = 60.0
    rtsp: int = 4
    files: int = 4
    sample_every_s: float = 2.0
    warmup_s: float = 60.0            # growth is measured from the end of this
    fps: int = 10                     # RTSP server frame rate
    width: int = 320
    height: int = 240
    detect_every: int = 2
    out: Path = REPO / "benchmarks" / "results" / "soak"
    watch_args: tuple[str, ...] = ()
    goals: SoakGoals = field(default_factory=SoakGoals)

    def __post_init__(self) -> None:
        checks = {"duration_s": self.duration_s > self.warmup_s + 30, "restart_every_s": self.restart_every_s >= 5,
                  "rtsp": self.rtsp >= 0, "files": self.files >= 0, "streams": self.rtsp + self.files >= 1,
                  "sample_every_s": self.sample_every_s > 0, "fps": self.fps >= 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"soak: invalid settings {bad} in {self}: need duration > warm-up + 30 s, restarts "
                             f">= 5 s apart, at least one stream, positive sampling interval and fps")


@dataclass
class Sample:
    t_s: float          # seconds since the child started
    rss_mib: float
    fds: int
    threads: int
    cpu_s: float        # user + system CPU seconds of the child so far


@dataclass
class Restart:
    kill_ts: float      # time.time() of SIGKILL
    ready_ts: float     # time.time() the new server printed READY


# ---------------------------------------------------------------------------------------------- /proc sampling
def sample_proc(pid: int, t_s: float) -> Sample | None:
    """RSS, fds, threads and CPU seconds of ``pid`` from /proc (None once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields.get("VmRSS", "0 kB").split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks          # utime, stime (fields 14, 15 of stat)
    return Sample(round(t_s, 2), round(rss_kib / 1024, 2), fds, int(fields["Threads"].strip()), round(cpu, 2))


# ---------------------------------------------------------------------------------------------- RTSP server
class RtspServerProcess:
    """The test RTSP server as a child process; ``crash_and_restart`` SIGKILLs it and starts it on the same port."""

    def __init__(self, paths: Sequence[str], fps: int, width: int, height: int,
                 script: Path = SERVER_SCRIPT, python: str = SYSTEM_PYTHON) -> None:
        if not Path(python).exists() or not script.is_file():
            raise FileNotFoundError(f"soak: the RTSP server needs {python} (with python3-gi and "
                                    f"gir1.2-gst-rtsp-server-1.0) and {script}; run from a source checkout or pass "
                                    f"--rtsp 0")
        self.paths, self.port = list(paths), 0
        self.base = [python, str(script), "--fps", str(fps), "--width", str(width), "--height", str(height)]
        for p in self.paths:
            self.base += ["--path", p]
        self.proc: subprocess.Popen[str] | None = None

    def urls(self) -> list[str]:
        return [f"rtsp://127.0.0.1:{self.port}{p}" for p in self.paths]

    def start(self, timeout_s: float = 20.0) -> float:
        """Start (retrying while the port is still held); returns time.time() at READY."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.proc = subprocess.Popen(self.base + ["--port", str(self.port)], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
            line = self._readline(deadline)
            if line.startswith("READY"):
                self.port = int(line.split()[1])
                return time.time()
            self.kill()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"soak: RTSP server did not start within {timeout_s:g} s: {line.strip()!r}")
            time.sleep(0.2)

    def _readline(self, deadline: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                return self.proc.stdout.readline()
            if self.proc.poll() is not None:
                return ""
        return ""

    def kill(self) -> float:
        ts = time.time()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        return ts

    def crash_and_restart(self) -> Restart:
        kill_ts = self.kill()
        return Restart(kill_ts, self.start())


# ---------------------------------------------------------------------------------------------- media
def looped_clips(directory: Path, n: int, frames: int = 240) -> list[Path]:
    """``n`` MP4 recordings of the demo source (real, then self-blended fake: 4 s each), one seed per file."""
    import cv2

    from fakewatch.streams.demo import DemoSource

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = directory / f"demo_loop_{i}.mp4"
        if not (path.is_file() and path.stat().st_size > 0):
            src = DemoSource(f"demo:{i}", pace=False, loops=max(1, frames // 120), seed=i)
            src.open()
            tmp = path.with_name("partial_" + path.name)
            writer = None
            try:
                while (raw := src.read()) is not None:
                    h, w = raw.image.shape[:2]
                    if writer is None:
                        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), src.fps or 30.0, (w, h))
                    writer.write(raw.image)
            finally:
                src.close()
                if writer is not None:
                    writer.release()
            tmp.replace(path)
        out.append(path)
    return out


# ---------------------------------------------------------------------------------------------- analysis
def _window(samples: Sequence[Sample], lo: float, hi: float) -> list[Sample]:
    return [s for s in samples if lo <= s.t_s < hi]


def analyse(samples: Sequence[Sample], restarts: Sequence[Restart], records: Iterable[dict],
            rtsp_ids: Sequence[str], file_ids: Sequence[str], *, child_start_ts: float, duration_s: float,
            warmup_s: float, returncode: int | None, tracebacks: int, goals: SoakGoals = SoakGoals()) -> dict:
    """The verdict: each goal's figures and pass/fail (pure: unit-tested on synthetic runs)."""
    records = list(records)
    v: dict[str, Any] = {}
    # RSS: the reference is the minute after warm-up; the end is the last minute
    ref = _window(samples, warmup_s, warmup_s + 60) or list(samples[:1])
    end_t = samples[-1].t_s if samples else 0.0
    tail = _window(samples, end_t - 60, end_t + 1) or list(samples[-1:])
    if ref and tail:
        ref_rss = statistics.median(s.rss_mib for s in ref)
        end_rss = statistics.median(s.rss_mib for s in tail)
        after = [s.rss_mib for s in samples if s.t_s >= warmup_s] or [ref_rss]
        growth = 100.0 * (end_rss - ref_rss) / ref_rss
        v["rss"] = {"ref_mib": ref_rss, "end_mib": end_rss, "max_mib": max(after),
                    "growth_pct": round(growth, 2), "max_growth_pct": round(100.0 * (max(after) - ref_rss) / ref_rss, 2),
                    "ok": growth <= goals.rss_growth_pct}
        # fds / threads: the last quarter never exceeds the reference window's max (+ slack for an open in flight)
        quarter = _window(samples, end_t - (end_t - warmup_s) / 4, end_t + 1) or tail
        for key, slack in (("fds", goals.fd_slack), ("threads", goals.thread_slack)):
            ref_max, tail_max = max(getattr(s, key) for s in ref), max(getattr(s, key) for s in quarter)
            v[key] = {"ref_max": ref_max, "last_quarter_max": tail_max, "end": getattr(samples[-1], key),
                      "ok": tail_max <= ref_max + slack}
    else:
        v["rss"] = v["fds"] = v["threads"] = {"ok": False, "why": "no samples"}
    # reconnects: each restart -> every RTSP stream's first 'live' after the kill
    lives = sorted((r["ts"], r["stream"]) for r in records if r.get("type") == "source" and r.get("state") == "live")
    per_restart = []
    for rs in restarts:
        delays = {}
        for sid in rtsp_ids:
            ts = next((t for t, s in lives if s == sid and t > rs.kill_ts), None)
            delays[sid] = None if ts is None else round(ts - rs.ready_ts, 3)
        per_restart.append({"kill_ts": rs.kill_ts, "ready_ts": rs.ready_ts, "down_s": round(rs.ready_ts - rs.kill_ts, 3),
                            "live_after_ready_s": delays})
    # a restart in the child's last seconds cannot be followed by 'live' before --duration ends: not counted
    judged = [p for p in per_restart if p["ready_ts"] + goals.live_within_s < child_start_ts + duration_s]
    all_delays = [d for p in judged for d in p["live_after_ready_s"].values()]
    worst = None if not all_delays or None in all_delays else max(all_delays)
    reconnect_ok = not rtsp_ids or (bool(judged) and worst is not None and worst <= goals.live_within_s)
    v["reconnect"] = {"restarts": len(restarts), "judged": len(judged), "worst_s": worst,
                      "median_s": round(statistics.median(all_delays), 3) if all_delays and None not in all_delays
                      else None,
                      "missing": sum(1 for d in all_delays if d is None),
                      "late": sum(1 for d in all_delays if d is not None and d > goals.live_within_s),
                      "ok": reconnect_ok}
    # alerts continue: state records from the file streams in every window after warm-up
    states = [r["ts"] - child_start_ts for r in records if r.get("type") == "state" and r.get("stream") in file_ids]
    windows = []
    t = warmup_s
    while t + goals.alert_window_s <= duration_s:
        windows.append(sum(1 for x in states if t <= x < t + goals.alert_window_s))
        t += goals.alert_window_s
    v["alerts"] = {"state_records": len(states), "windows": len(windows), "per_window_min": min(windows, default=0),
                   "ok": not file_ids or (bool(windows) and min(windows) > 0)}
    crashed = [r.get("message") for r in records if r.get("type") == "source" and "crashed" in str(r.get("message"))]
    summary = next((r for r in reversed(records) if r.get("type") == "summary"), None)
    v["crashes"] = {"returncode": returncode, "tracebacks": tracebacks, "reader_crashes": len(crashed),
                    "summary_written": summary is not None,
                    "stop_reason": summary.get("stop_reason") if summary else None,
                    "ok": returncode == 0 and tracebacks == 0 and not crashed and summary is not None}
    v["pass"] = all(v[k]["ok"] for k in ("rss", "fds", "threads", "reconnect", "alerts", "crashes"))
    return v


# ---------------------------------------------------------------------------------------------- outputs
def write_csv(path: Path, samples: Sequence[Sample]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(Sample.__dataclass_fields__))
        w.writeheader()
        for s in samples:
            w.writerow(asdict(s))


def write_plot(path: Path, samples: Sequence[Sample], restarts: Sequence[Restart], child_start_ts: float,
               title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t_s / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    for ax, key, label in zip(axes, ("rss_mib", "fds", "threads"), ("RSS (MiB)", "open fds", "threads")):
        ax.plot(t, [getattr(s, key) for s in samples], lw=1.2, label="fakewatch watch (8 streams)")
        for i, r in enumerate(restarts):
            ax.axvline((r.kill_ts - child_start_ts) / 60, color="tab:red", alpha=0.25, lw=0.8,
                       label="RTSP server killed + restarted" if i == 0 else None)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[-1].set_xlabel("time since start (min)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(verdict: dict, cfg: SoakConfig, env: dict) -> str:
    mark = {True: "met", False: "NOT met"}
    r, rc, al, cr = verdict["rss"], verdict["reconnect"], verdict["alerts"], verdict["crashes"]
    lines = [f"# Soak run: {cfg.duration_s / 60:g} min, {cfg.rtsp} RTSP + {cfg.files} looped files, server killed "
             f"every {cfg.restart_every_s:g} s", "",
             f"Command: `{env['command']}`  ", f"Commit: {env.get('git_commit')}, {env['timestamp_utc']}, "
             f"load average (1 min) {env.get('load_avg_1m_start')} at start, {env.get('load_avg_1m_end')} at end.", "",
             "| goal | figure | verdict |", "|---|---|---|",
             f"| RSS growth <= {cfg.goals.rss_growth_pct:g} % after the first minute | {r.get('ref_mib')} -> "
             f"{r.get('end_mib')} MiB ({r.get('growth_pct')} %; max {r.get('max_growth_pct')} %) | {mark[r['ok']]} |",
             f"| fds flat | ref max {verdict['fds'].get('ref_max')}, last quarter max "
             f"{verdict['fds'].get('last_quarter_max')} | {mark[verdict['fds']['ok']]} |",
             f"| threads flat | ref max {verdict['threads'].get('ref_max')}, last quarter max "
             f"{verdict['threads'].get('last_quarter_max')} | {mark[verdict['threads']['ok']]} |",
             f"| every restart -> `live` within {cfg.goals.live_within_s:g} s | {rc['judged']} restarts x {cfg.rtsp} "
             f"streams: median {rc['median_s']} s, worst {rc['worst_s']} s, late {rc['late']}, missing "
             f"{rc['missing']} | {mark[rc['ok']]} |",
             f"| zero crashes | exit code {cr['returncode']}, tracebacks {cr['tracebacks']}, reader crashes "
             f"{cr['reader_crashes']}, ended: {cr['stop_reason']} | {mark[cr['ok']]} |",
             f"| alerts continue | {al['state_records']} state alerts; min {al['per_window_min']} per "
             f"{cfg.goals.alert_window_s:g} s window over {al['windows']} windows | {mark[al['ok']]} |", "",
             f"**Overall: {'PASS' if verdict['pass'] else 'FAIL'}**", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the run
def watch_command(sources: Sequence[str], jsonl: Path, cfg: SoakConfig) -> list[str]:
    return [sys.executable, "-m", "fakewatch", "watch", *sources, "--loop", "--json", str(jsonl), "--no-live",
            "--status-interval", "5", "--duration", f"{cfg.duration_s:g}", "--detect-every", str(cfg.detect_every),
            *cfg.watch_args]


def run_soak(cfg: SoakConfig, argv: Sequence[str] | None = None, progress: bool = True) -> dict:
    from tqdm import tqdm

    from fakewatch.benchmarks.env import environment, load_average_1m

    env = environment()
    env["malloc_arena_max"] = os.environ.get("MALLOC_ARENA_MAX")   # inherited by the child; changes native RSS
    if argv is not None:
        env["command"] = " ".join(shlex.quote(a) for a in argv)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    files = [str(p) for p in looped_clips(work / "clips", cfg.files)]
    server = RtspServerProcess([f"/cam{i}" for i in range(cfg.rtsp)], cfg.fps, cfg.width, cfg.height) \
        if cfg.rtsp else None
    jsonl, log = work / "watch.jsonl", work / "watch.stderr.log"
    samples: list[Sample] = []
    restarts: list[Restart] = []
    child = None
    try:
        if server is not None:
            server.start()
        rtsp_urls = server.urls() if server else []
        cmd = watch_command(rtsp_urls + files, jsonl, cfg)
        with open(log, "w") as err:
            child_start = time.time()
            child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
            t0 = time.monotonic()
            next_sample, next_restart = t0, t0 + cfg.restart_every_s
            bar = tqdm(total=int(cfg.duration_s), unit="s", desc="soak", disable=not progress)
            while child.poll() is None:
                now = time.monotonic()
                if now >= next_sample:
                    s = sample_proc(child.pid, now - t0)
                    if s is not None:
                        samples.append(s)
                        bar.set_postfix(rss=f"{s.rss_mib:.0f}MiB", fds=s.fds, thr=s.threads, restarts=len(restarts))
                    next_sample += cfg.sample_every_s
                if server is not None and now >= next_restart and now - t0 < cfg.duration_s - 1:
                    restarts.append(server.crash_and_restart())
                    next_restart += cfg.restart_every_s
                bar.n = min(int(now - t0), int(cfg.duration_s))
                bar.refresh()
                time.sleep(max(0.0, min(next_sample, next_restart) - time.monotonic()))
                if now - t0 > cfg.duration_s + 120:      # the child ignored --duration: that is a failure too
                    child.send_signal(signal.SIGTERM)
                    child.wait(timeout=30)
            bar.close()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        if server is not None:
            server.kill()
    env["load_avg_1m_end"] = load_average_1m()
    records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()] if jsonl.exists() else []
    stderr_text = log.read_text(errors="replace") if log.exists() else ""
    verdict = analyse(samples, restarts, records, [f"rtsp://127.0.0.1:{server.port}/cam{i}" for i in range(cfg.rtsp)]
                      if server else [], files, child_start_ts=child_start, duration_s=cfg.duration_s,
                      warmup_s=cfg.warmup_s, returncode=child.returncode if child else None,
                      tracebacks=stderr_text.count("Traceback"))
    write_csv(out / "soak_samples.csv", samples)
    write_plot(out / "soak.png", samples, restarts, child_start,
               f"fakewatch watch soak: {cfg.rtsp} RTSP (server SIGKILLed every {cfg.restart_every_s:g} s) + "
               f"{cfg.files} looped files, {cfg.duration_s / 60:g} min")
    doc = {"environment": env, "config": {**asdict(cfg), "out": str(cfg.out)}, "watch_command": cmd[1:],
           "verdict": verdict, "restarts": [asdict(r) for r in restarts],
           "summary_record": next((r for r in reversed(records) if r.get("type") == "summary"), None)}
    (out / "soak.json").write_text(json.dumps(doc, indent=2, default=str))
    (out / "soak.md").write_text(markdown(verdict, cfg, env))
    shutil.copy(log, out / "watch.stderr.log")
    return verdict


def build_parser() -> argparse.ArgumentParser:
    d = SoakConfig()
    p = argparse.ArgumentParser(prog="python -m fakewatch.benchmarks.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=d.duration_s, help="seconds (default 1800 = 30 min)")
    p.add_argument("--restart-every", type=float, default=d.restart_every_s, help="seconds between server kills")
    p.add_argument("--rtsp", type=int, default=d.rtsp, help="RTSP streams (mount points of one server)")
    p.add_argument("--files", type=int, default=d.files, help="looped file streams")
    p.add_argument("--fps", type=int, default=d.fps, help="RTSP frame rate")
    p.add_argument("--sample-every", type=float, default=d.sample_every_s, help="seconds between /proc samples")
    p.add_argument("--warmup", type=float, default=d.warmup_s, help="seconds before the RSS reference window")
    p.add_argument("--out", type=Path, default=d.out, help="result folder (CSV, PNG, JSON, MD)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("watch_args", nargs=argparse.REMAINDER, help="after --: extra `fakewatch watch` options")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    extra = tuple(a for a in args.watch_args if a != "--")
    cfg = SoakConfig(duration_s=args.duration, restart_every_s=args.restart_every, rtsp=args.rtsp, files=args.files,
                     fps=args.fps, sample_every_s=args.sample_every, warmup_s=args.warmup, out=args.out,
                     watch_args=extra)
    shown = ["python", "-m", "fakewatch.benchmarks.soak", *(sys.argv[1:] if argv is None else argv)]
    verdict = run_soak(cfg, shown, progress=not args.no_progress)
    print((Path(cfg.out) / "soak.md").read_text())
    return 0 if verdict["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
