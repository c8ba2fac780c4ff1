"""Prometheus ``/metrics`` (prometheus_client), on its own registry and HTTP thread.

Names (all prefixed ``fakewatch_``; ``camera`` is the camera name, or the redacted source id):

======================================================  =========  ==================================================
metric                                                  type       meaning
======================================================  =========  ==================================================
``camera_fps{camera}``                                  gauge      frames per second processed (last status)
``camera_frames_processed_total{camera}``               counter    frames decided
``camera_frames_dropped_total{camera}``                 counter    frames skipped (newest frame wins)
``camera_fake{camera}``                                 gauge      1 = FAKE, 0 = REAL, -1 = UNKNOWN
``camera_state{camera,fakewatch_camera_state}``         enum       REAL / FAKE / UNKNOWN
``camera_status{camera,fakewatch_camera_status}``       enum       connecting / live / reconnecting / stale / ...
``camera_score{camera}``                                gauge      rolling P(fake) (NaN while UNKNOWN)
``camera_reconnects_total{camera}``                     counter    times frames flowed again after a loss
``camera_last_frame_age_seconds{camera}``               gauge      now - capture time of the last decided frame
``stage_latency_seconds{stage}``                        histogram  per-frame stage latency (dequeue, roi, ... total;
                                                                   triton: server_queue, server_compute)
``alerts_total{camera,label}``                          counter    FAKE episodes started
``batch_size``                                          histogram  model inputs per batch
``events_total{type}``                                  counter    events sent (new / update / end)
``output_dropped{output}``                              gauge      messages an output had to drop
``info{model,backend,version}``                         info       what runs
======================================================  =========  ==================================================
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Mapping, Sequence

from fakewatch.runtime.monitor import Output

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
STATES = ("REAL", "FAKE", "UNKNOWN")
STATUSES = ("connecting", "live", "reconnecting", "stale", "failed", "ended")
FAKE_VALUE = {"FAKE": 1.0, "REAL": 0.0, "UNKNOWN": -1.0}


class MetricsOutput(Output):
    name = "metrics"

    def __init__(self, port: int, host: str = "0.0.0.0", siblings: Sequence[Output] = (),
                 clock: Any = time.monotonic, serve: bool = True) -> None:
        if not 0 <= port < 65536:
            raise ValueError(f"--metrics-port must be 0..65535 (0 = any free port), got {port}")
        from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info

        self.host, self.port = host, port
        self.serve = serve                 # False: no listener of its own (the dashboard's port serves /metrics)
        self.clock = clock
        self.siblings = list(siblings)     # outputs whose drops we export
        self.registry = r = CollectorRegistry()
        cam = ["camera"]
        self.fps = Gauge("fakewatch_camera_fps", "Frames per second processed, per camera", cam, registry=r)
        self.frames = Counter("fakewatch_camera_frames_processed_total", "Frames decided", cam, registry=r)
        self.frames_dropped = Counter("fakewatch_camera_frames_dropped_total", "Frames skipped (newest frame wins)", cam,
                               registry=r)
        self.fake = Gauge("fakewatch_camera_fake", "1 = FAKE, 0 = REAL, -1 = UNKNOWN", cam, registry=r)
        self.state_enum = Enum("fakewatch_camera_state", "Verdict per camera", cam, states=list(STATES), registry=r)
        self.status_enum = Enum("fakewatch_camera_status", "Source status per camera", cam, states=list(STATUSES),
                                registry=r)
        self.score = Gauge("fakewatch_camera_score", "Rolling P(fake) per camera (NaN while unknown)", cam,
                           registry=r)
        self.reconnects = Counter("fakewatch_camera_reconnects_total", "Frames flowed again after a loss", cam,
                                  registry=r)
        self.age = Gauge("fakewatch_camera_last_frame_age_seconds",
                         "Seconds since the capture of the newest decided frame", cam, registry=r)
        self.latency = Histogram("fakewatch_stage_latency_seconds", "Per-frame latency of each pipeline stage",
                                 ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.alerts = Counter("fakewatch_alerts_total", "FAKE episodes started", ["camera", "label"], registry=r)
        self.batch_size = Histogram("fakewatch_batch_size", "Model inputs per batch", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.events = Counter("fakewatch_events_total", "Events sent", ["type"], registry=r)
        self.out_dropped = Gauge("fakewatch_output_dropped", "Messages an output had to drop", ["output"],
                                 registry=r)
        self.info = Info("fakewatch", "Model and backend", registry=r)
        self._last_capture: dict[str, float] = {}
        self._dropped_seen: dict[str, int] = {}
        self._status: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: Any = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, info: Mapping[str, Any]) -> None:
        from prometheus_client import start_http_server

        self.info.info({"model": str(info.get("model", "")), "backend": str(info.get("backend", "")),
                        "version": _version()})
        for cam in info.get("cameras", ()):
            self._camera(cam)
        if not self.serve:
            return
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as e:       # RuntimeError: the CLI prints it as one line
            raise RuntimeError(f"--metrics-port {self.port} on {self.host}: {e.strerror or e}; pick a free port "
                               f"(0 = any)") from None
        self.port = self._server.server_address[1]

    def _camera(self, cam: str) -> None:
        """Create the camera's series up front, so dashboards see 0 rather than nothing."""
        if cam in self._dropped_seen:
            return
        self._dropped_seen[cam] = 0
        for m in (self.frames, self.frames_dropped, self.reconnects, self.fps):
            m.labels(cam)
        self.alerts.labels(cam, "fake")
        self.fake.labels(cam).set(-1)
        self.score.labels(cam).set(math.nan)
        self.state_enum.labels(cam).state("UNKNOWN")
        self.age.labels(cam).set_function(lambda c=cam: self._age(c))

    def _age(self, cam: str) -> float:
        with self._lock:
            t = self._last_capture.get(cam)
        return math.nan if t is None else max(0.0, self.clock() - t)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ hooks
    def frame(self, view: Any) -> None:
        from fakewatch.runtime.latency import stage_durations_ms

        self._camera(view.stream)
        self.frames.labels(view.stream).inc()
        with self._lock:
            self._last_capture[view.stream] = view.capture_ts
        for stage, ms in stage_durations_ms(view.timings).items():
            self.latency.labels(stage).observe(ms / 1e3)
        for stage, ms in (getattr(view, "server_ms", None) or {}).items():   # Triton: server queue / compute
            self.latency.labels(stage).observe(ms / 1e3)

    def batch(self, rows: int, reason: str) -> None:
        self.batch_size.observe(rows)

    def state(self, camera: str, state: str, score: float | None) -> None:
        self._camera(camera)
        self.state_enum.labels(camera).state(state if state in STATES else "UNKNOWN")
        self.fake.labels(camera).set(FAKE_VALUE.get(state, -1.0))
        if state == "UNKNOWN":
            self.score.labels(camera).set(math.nan)

    def status(self, camera: str, status: str, message: str) -> None:
        self._camera(camera)
        previous = self._status.get(camera)
        self._status[camera] = status
        if status in STATUSES:
            self.status_enum.labels(camera).state(status)
        if status == "live" and previous in ("reconnecting", "stale"):
            self.reconnects.labels(camera).inc()

    def camera_stats(self, camera: str, stats: Mapping[str, Any]) -> None:
        self._camera(camera)
        self.fps.labels(camera).set(float(stats.get("fps") or 0.0))
        score = stats.get("score")
        self.score.labels(camera).set(math.nan if score is None or stats.get("state") == "UNKNOWN" else score)
        dropped = int(stats.get("dropped") or 0)      # cumulative in the status record: export the increase
        if dropped > self._dropped_seen[camera]:
            self.frames_dropped.labels(camera).inc(dropped - self._dropped_seen[camera])
            self._dropped_seen[camera] = dropped
        for out in self.siblings:
            self.out_dropped.labels(out.name).set(out.dropped)

    def event(self, event: Mapping[str, Any]) -> None:
        self.events.labels(event["type"]).inc()
        if event["type"] == "new":
            self.alerts.labels(event["after"]["camera"], event["after"]["label"]).inc()


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("fakewatch")
    except Exception:
        return "unknown"
