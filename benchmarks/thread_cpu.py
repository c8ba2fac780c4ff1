"""CPU time per thread group while a run goes on: where a benchmark's CPU went (decode, ROI stage, inference loop,
native pools). Linux only (``/proc/self/task``); elsewhere the result is empty.

Threads come and go (readers start with the run and are joined at its end), so a sampler thread reads every
thread's cumulative user+system time a few times a second and keeps the last value seen per thread id. CPU a
thread spends after the last sample before it ends is not counted (at most one interval of its work; reader threads
end with the run, so a 12 s benchmark row under-counts their CPU by at most ~2 %). Python
threads are grouped by name prefix (:data:`GROUPS`); threads Python does not know (OpenCV's FFmpeg decoder
threads, ONNX Runtime / OpenVINO pools) count as ``native``.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

#: thread-name prefix -> group (first match wins)
GROUPS = (("streams-reader", "decode"), ("fakewatch-roi", "roi"), ("MainThread", "loop"), ("", "python-other"))
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(tid: int) -> float | None:
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK     # utime, stime (fields 14, 15 of stat)


class ThreadCpu:
    """``with ThreadCpu() as tc: run()`` then ``tc.seconds()`` -> {group: CPU seconds during the block}."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._group: dict[int, str] = {}
        self._started: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="thread-cpu-sampler", daemon=True)

    def _sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        try:
            tids = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            return
        for tid in tids:
            cpu = _cpu_s(tid)
            if cpu is None:
                continue
            # a thread that started inside the block counts from zero (it may have run before the first sample)
            self._first.setdefault(tid, cpu if self._started is None else 0.0)
            self._last[tid] = cpu
            if tid not in self._group or self._group[tid] == "native":
                name = names.get(tid)
                self._group[tid] = "native" if name is None else next(g for p, g in GROUPS if name.startswith(p))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> "ThreadCpu":
        self._sample()
        self._started = 1.0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for tid, last in self._last.items():
            g = self._group.get(tid, "native")
            if g == "python-other" and tid == threading.get_native_id():
                continue
            out[g] = out.get(g, 0.0) + last - self._first[tid]
        return {g: round(s, 3) for g, s in sorted(out.items())}
