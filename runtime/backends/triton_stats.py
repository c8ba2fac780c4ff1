"""Server-side timing for the triton backend: Triton's own statistics, sampled while batches run.

Triton keeps cumulative per-model counters (the statistics extension, ``get_inference_statistics``): for every
request the time it waited in the scheduler queue and the time spent in compute (input copy, inference, output
copy). A response carries none of it, so :class:`ServerTimingSampler` reads the counters on a background thread,
at most every ``interval_s`` and only after batches completed, and keeps the per-request means of the last interval
(:func:`interval_means`). The watch pipeline adds them to each frame's latency as the ``server_queue`` and
``server_compute`` stages (``stage_latency_seconds{stage="server_queue"}``); ``inference`` minus both is transfer,
(de)serialisation and the client's own wait.

They are means over the interval of every request the server saw for the model, from all clients: with several
edge nodes on one server that is exactly the queueing a node suffers, but not the timing of its own request.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

_COMPUTE_PARTS = ("compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class StatsSnapshot:
    """One model's cumulative counters at one moment (nanoseconds and counts as Triton reports them)."""

    requests: int          # successful requests
    executions: int        # model executions (batches the server ran; < requests when it merged them)
    queue_ns: int
    queue_count: int
    compute_ns: int        # compute_input + compute_infer + compute_output
    compute_count: int     # requests accounted in compute_infer

    @classmethod
    def from_json(cls, stats: Mapping[str, Any], model: str) -> "StatsSnapshot":
        """From ``get_inference_statistics(model, as_json=True)``; a clear error if the model is not in it."""
        entries = [e for e in stats.get("model_stats") or [] if e.get("name", model) == model]
        if not entries:
            names = [e.get("name") for e in stats.get("model_stats") or []]
            raise ValueError(f"Triton statistics have no entry for model {model!r} (they list {names})")
        entry = entries[0]
        inf = entry.get("inference_stats") or {}

        def part(key: str) -> tuple[int, int]:
            p = inf.get(key) or {}
            return int(p.get("ns", 0) or 0), int(p.get("count", 0) or 0)

        queue_ns, queue_n = part("queue")
        compute_ns = sum(part(k)[0] for k in _COMPUTE_PARTS)
        return cls(requests=part("success")[1], executions=int(entry.get("execution_count", 0) or 0),
                   queue_ns=queue_ns, queue_count=queue_n, compute_ns=compute_ns,
                   compute_count=part("compute_infer")[1])


def interval_means(prev: StatsSnapshot, cur: StatsSnapshot) -> dict[str, float] | None:
    """Mean server queue and compute ms per request between two snapshots, plus requests/executions in between.

    None when nothing ran in between, or when the counters went backwards (the server restarted: they start again
    from 0, so the caller takes ``cur`` as the new baseline)."""
    dq, dc = cur.queue_count - prev.queue_count, cur.compute_count - prev.compute_count
    if cur.requests < prev.requests or dq < 0 or dc < 0 or dq == 0 or dc == 0:
        return None
    return {"server_queue": (cur.queue_ns - prev.queue_ns) / dq / 1e6,
            "server_compute": (cur.compute_ns - prev.compute_ns) / dc / 1e6,
            "requests": float(cur.requests - prev.requests), "executions": float(cur.executions - prev.executions)}


class ServerTimingSampler:
    """Reads ``fetch()`` (a StatsSnapshot) on its own thread after batches completed, at most every ``interval_s``.

    :meth:`batch_done` is what the inference path calls (cheap: sets an event); :attr:`latest` holds the last
    interval's means, or {} until two samples exist. Failures (a server restarting) are counted, never raised.
    One thread, one request at a time, a fixed-size state: safe for a run of months."""

    def __init__(self, fetch: Callable[[], StatsSnapshot], interval_s: float = 0.5) -> None:
        if interval_s <= 0:
            raise ValueError(f"server timing interval must be > 0 s, got {interval_s}")
        self.fetch = fetch
        self.interval_s = float(interval_s)
        self.latest: dict[str, float] = {}
        self.samples = 0
        self.failures = 0
        self._prev: StatsSnapshot | None = None
        self._work = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ServerTimingSampler":
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="triton-stats", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._work.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def batch_done(self) -> None:
        self._work.set()

    def sample(self) -> dict[str, float] | None:
        """Take one sample now (the thread's step; also callable directly). Returns the new means or None."""
        try:
            cur = self.fetch()
        except Exception:     # server down or restarting: the next sample after it is back starts a new baseline
            self.failures += 1
            self._prev = None
            return None
        prev, self._prev = self._prev, cur
        self.samples += 1
        means = interval_means(prev, cur) if prev is not None else None
        if means is not None:
            self.latest = means
        return means

    def _run(self) -> None:
        while not self._stop.is_set():
            self._work.wait()
            if self._stop.is_set():
                return
            self._work.clear()
            self.sample()
            self._stop.wait(self.interval_s)     # at most one statistics request per interval
