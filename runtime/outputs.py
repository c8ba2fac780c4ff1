"""Build the monitoring hub (runtime/monitor.py) and its outputs from a validated watch config.

One row per output kind: the config section it reads and the function that turns that section into outputs. Heavy
client libraries (paho-mqtt, prometheus_client) load only when their output is configured.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from fakewatch.runtime.config import WatchFile
from fakewatch.runtime.monitor import Monitor, Output


def _mqtt(cfg: WatchFile) -> list[Output]:
    from fakewatch.runtime.mqtt_output import MqttOutput

    return [MqttOutput(cfg.mqtt.settings())] if cfg.mqtt is not None else []


def _webhooks(cfg: WatchFile) -> list[Output]:
    from fakewatch.runtime.webhook_output import WebhookOutput

    return [WebhookOutput(w.settings()) for w in cfg.webhooks]


#: (name, builder) in start order; metrics come last so they can export the others' drop counters
OUTPUTS: tuple[tuple[str, Callable[[WatchFile], list[Output]]], ...] = (("mqtt", _mqtt), ("webhooks", _webhooks))


def _dashboard(cfg: WatchFile, threshold: float) -> Any:
    """The dashboard output with its (not yet started) HTTP server, or None without ``--http`` / ``dashboard:``."""
    d = cfg.dashboard
    if d is None:
        return None
    from fakewatch.runtime.dashboard import Dashboard, DashboardSettings
    from fakewatch.runtime.http_server import DashboardServer, HttpSettings, parse_listen

    host, port = parse_listen(d.listen)
    token = d.token.get_secret_value() if d.token is not None else os.environ.get("FAKEWATCH_HTTP_TOKEN") or None
    dash = Dashboard(DashboardSettings(jpeg_fps=d.jpeg_fps, jpeg_width=d.jpeg_width, history_s=d.history,
                                       max_events=d.max_events, sse_clients=d.sse_clients), threshold=threshold)
    dash.server = DashboardServer(HttpSettings(host, port, token), dash)
    return dash


def wants_monitor(cfg: WatchFile) -> bool:
    return bool(cfg.mqtt or cfg.webhooks or cfg.metrics or cfg.snapshots or cfg.dashboard)


def build_monitor(cfg: WatchFile, model: str, backend: str, cameras: Sequence[str],
                  threshold: float = 0.5) -> Monitor | None:
    """The hub with every configured output (not started), or None when nothing is configured."""
    if not wants_monitor(cfg):
        return None
    outputs: list[Output] = [o for _name, build in OUTPUTS for o in build(cfg)]
    dashboard = _dashboard(cfg, threshold)
    if dashboard is not None:
        outputs.append(dashboard)
    if cfg.metrics is not None or dashboard is not None:
        from fakewatch.runtime.metrics_output import MetricsOutput

        # one registry: its own listener with --metrics-port, and /metrics on the dashboard's port with --http
        m = cfg.metrics
        metrics = MetricsOutput(m.port if m else 0, m.host if m else "127.0.0.1", siblings=list(outputs),
                                serve=m is not None)
        outputs.append(metrics)
        if dashboard is not None:
            dashboard.server.metrics = metrics
    snapshots: Any = None
    clips: Any = None
    if cfg.snapshots is not None:
        from fakewatch.runtime.snapshots import ClipRecorder, SnapshotStore

        s = cfg.snapshots
        try:
            snapshots = SnapshotStore(s.dir, quality=s.quality, keep=s.keep,
                                      max_age_s=None if s.max_age_days is None else s.max_age_days * 86400.0)
            if s.clip.enabled:
                clips = ClipRecorder(s.dir, pre_s=s.clip.pre, post_s=s.clip.post,
                                     max_bytes=int(s.clip.max_mb * 2**20))
        except OSError as e:
            raise RuntimeError(f"--snapshots {s.dir}: cannot use it ({e.strerror or e}); pass a writable "
                               f"directory") from None
    stats_s = cfg.mqtt.stats_interval if cfg.mqtt is not None else 60.0
    return Monitor(outputs, model=model, backend=backend, snapshots=snapshots, clips=clips,
                   stats_interval_s=stats_s, cameras=cameras)
