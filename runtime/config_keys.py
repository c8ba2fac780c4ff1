"""Which `fakewatch watch` flags a config file can also set, and where (kept free of pydantic: the parser
needs it at `fakewatch --help` time)."""
from __future__ import annotations

#: CLI dest -> key path in the file. A flag given on the command line wins over the file.
CLI_KEYS: dict[str, tuple] = {
    "model": ("model",), "backend": ("backend",), "device": ("device",), "threads": ("threads",),
    "batch": ("batch",), "max_wait_ms": ("max_wait_ms",),
    "window": ("decision", "window"), "aggregate": ("decision", "aggregate"), "enter": ("decision", "enter"),
    "leave": ("decision", "leave"), "min_duration": ("decision", "min_duration"),
    "face_detector": ("detect", "face_detector"), "detect_every": ("detect", "every"), "hold": ("detect", "hold"),
    "max_faces": ("detect", "max_faces"), "stale_after": ("stale_after",), "max_retries": ("max_retries",),
    "status_interval": ("status_interval",), "json": ("jsonl",), "loop": ("loop",),
    "mqtt": ("mqtt", "url"), "metrics_port": ("metrics", "port"), "metrics_host": ("metrics", "host"),
    "snapshots": ("snapshots", "dir"), "http": ("dashboard", "listen"), "http_token": ("dashboard", "token"),
    "triton_url": ("triton", "url"), "triton_model": ("triton", "model"), "triton_shm": ("triton", "shm"),
    "triton_stream": ("triton", "stream"),
}
