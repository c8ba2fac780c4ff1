"""Build the monitoring hub (runtime/monitor.py) and its outputs from a validated watch config.

One row per output kind: the config section it reads and the function that turns that section into outputs. Heavy
client libraries (paho-mqtt, prometheus_client) load only when their output is configured.
"""
from __future__ import annotations

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


def wants_monitor(cfg: WatchFile) -> bool:
    return bool(cfg.mqtt or cfg.webhooks or cfg.metrics or cfg.snapshots)


def build_monitor(cfg: WatchFile, model: str, backend: str, cameras: Sequence[str]) -> Monitor | None:
    """The hub with every configured output (not started), or None when nothing is configured."""
    if not wants_monitor(cfg):
        return None
    outputs: list[Output] = [o for _name, build in OUTPUTS for o in build(cfg)]
    if cfg.metrics is not None:
        from fakewatch.runtime.metrics_output import MetricsOutput

        outputs.append(MetricsOutput(cfg.metrics.port, cfg.metrics.host, siblings=list(outputs)))
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
