"""``fakewatch watch``: run a model over live sources and raise rolling Real/Fake alerts.

Imports nothing heavy at module level; the pipeline and the backend load inside :func:`_run_watch`.
"""
from __future__ import annotations

import argparse
import inspect
import json
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from fakewatch.runtime.backends import BACKENDS

#: name of each backend's CPU-threads option
THREAD_OPTION = {"onnxruntime": "intra_op_threads", "torch": "threads", "openvino": "threads"}
#: backends with a CPU throughput mode (``streams``)
STREAMS_BACKENDS = ("onnxruntime", "openvino")
DEMO_MODEL = Path(__file__).resolve().parent / "assets" / "demo" / "demo_model.onnx"
#: exit status when the run ended with every source in state 'failed' (1 = bad input/flags, 130 = interrupted)
EXIT_ALL_SOURCES_FAILED = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch", help="watch webcam/RTSP/file/demo streams and raise rolling Real/Fake alerts",
        description="Run a deepfake detector over one or more live sources: batched inference across streams, a "
                    "rolling per-stream decision with hysteresis, JSON-lines alerts and a latency summary on exit. "
                    "Ctrl-C (or SIGTERM) stops cleanly.",
        epilog="exit status: 0 = ran (some sources may have failed: see the summary), 1 = bad model/flags/input, "
               f"{EXIT_ALL_SOURCES_FAILED} = every source failed, 130 = interrupted twice")
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="webcam index or /dev/videoN, rtsp://..., http(s)://..., a video file, or 'demo' "
                        "(default: demo)")
    p.add_argument("--model", type=Path, default=None,
                   help="model artifact: .onnx (+ sidecar), TensorRT plan with sidecar, or fakewatch checkpoint "
                        "(default: the bundled demo model)")
    p.add_argument("--backend", choices=tuple(BACKENDS), default=None,
                   help="inference backend (default: picked from the model's type; an INT8 model quantized with "
                        "--target openvino runs on openvino when it is installed)")
    p.add_argument("--triton-url", default="grpc://127.0.0.1:8001", metavar="grpc://HOST:PORT",
                   help="--backend triton: the Triton server's gRPC endpoint (default grpc://127.0.0.1:8001)")
    p.add_argument("--triton-model", default="deepfake", metavar="NAME",
                   help="--backend triton: model name on the server; its config carries the contract, so no --model "
                        "is needed (default deepfake)")
    p.add_argument("--triton-shm", choices=("auto", "on", "off"), default="auto",
                   help="--backend triton: send input batches through system shared memory (auto: when the server "
                        "is on this machine and can map it; on: require it; off: gRPC bytes)")
    p.add_argument("--triton-stream", action=argparse.BooleanOptionalAction, default=True,
                   help="--backend triton: send every request on one gRPC bidirectional stream (default; less client "
                        "and server CPU per request, perf_analyzer's --streaming); --no-triton-stream: one gRPC call "
                        "each, for an L7 load balancer that should spread single requests over several servers")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="onnxruntime/torch device (default: auto for onnxruntime, cpu for torch and openvino)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU inference threads (0 = backend default; per stream with --streams)")
    p.add_argument("--streams", default=None, metavar="N|auto",
                   help="onnxruntime/openvino on CPU: split each batch into N shards run at once, one thread each "
                        "by default ('auto' = one per core); more throughput for multi-source batches")
    g = p.add_argument_group("batching")
    g.add_argument("--batch", type=int, default=None,
                   help="max model inputs per batch (default: number of sources, at least --max-faces for face "
                        "models, at most 16)")
    g.add_argument("--max-wait-ms", type=float, default=None,
                   help="push a partial batch this long after its first frame (default: 0 on CPU = batch what "
                        "arrived together; on GPU one frame interval of the fastest source, at most 40)")
    d = p.add_argument_group("decision")
    d.add_argument("--window", default="2s", help="rolling window: seconds ('2s') or frames ('30f') (default 2s)")
    d.add_argument("--aggregate", choices=("confident", "mean", "ema"), default="confident",
                   help="window aggregation (default: confident = DFDC winner's strategy)")
    d.add_argument("--enter", type=float, default=None,
                   help="rolling P(fake) to enter FAKE (default: model threshold + 0.1)")
    d.add_argument("--leave", type=float, default=None,
                   help="rolling P(fake) below which FAKE returns to REAL (default: model threshold - 0.1)")
    d.add_argument("--min-duration", type=float, default=1.0,
                   help="seconds a REAL<->FAKE change must hold before it is reported (default 1.0)")
    r = p.add_argument_group("faces (models with a face ROI)")
    r.add_argument("--face-detector", default=None, metavar="NAME|yunet:PATH|PATH|grpc://HOST:PORT/NAME",
                   help="blazeface (MediaPipe full range, the default; runs on the model's backend), blazeface-short "
                        "(close faces, ~4x cheaper), haar (OpenCV cascade), yunet:PATH (cv2.FaceDetectorYN), or a "
                        "face_boxes model file, e.g. a TensorRT plan of blazeface_full.onnx, or a BlazeFace on a Triton "
                        "server (grpc://HOST:PORT/NAME, `fakewatch export triton --with-detector`)")
    r.add_argument("--detect-every", type=int, default=None,
                   help="run the face detector every K frames per stream and track faces in between (default 3, "
                        "chosen in benchmarks/results/face_roi/detect_every.md)")
    r.add_argument("--max-detect-every", type=int, default=None, metavar="K",
                   help="when frames are being lost, detect less often, up to every K frames (default 2 x "
                        "--detect-every; equal to --detect-every = fixed cadence; runtime/detect_cadence.py)")
    r.add_argument("--reader-max-height", type=int, default=None, metavar="PX",
                   help="scale frames taller than PX down by the smallest whole factor that fits in the reader thread "
                        "(e.g. 540 for 1080p cameras; 720p with 540 becomes 360p; crops then come from the smaller "
                        "frame; streams/working_size.py)")
    r.add_argument("--decode-threads", type=int, default=None, metavar="N",
                   help="FFmpeg decoder threads per file/RTSP stream (default: 1 once there are as many streams as "
                        "CPUs, else OpenCV's default; 0 = OpenCV's default)")
    r.add_argument("--hold", type=float, default=0.5, help="keep face boxes this many seconds when detection misses")
    r.add_argument("--max-faces", type=int, default=4, help="faces scored per frame (max over them)")
    o = p.add_argument_group("output and run control")
    o.add_argument("--json", default=None, metavar="FILE", help="write JSON-lines alerts to FILE ('-' = stdout)")
    o.add_argument("--frames", action="store_true", help="also write one 'frame' record per processed frame")
    o.add_argument("--status-interval", type=float, default=1.0, help="seconds between status records (0 = off)")
    o.add_argument("--duration", type=float, default=None, help="stop after S seconds (files also stop at EOF)")
    o.add_argument("--no-pace", action="store_true",
                   help="read files/demo as fast as possible (every frame) instead of at their frame rate")
    o.add_argument("--loop", action="store_true", help="loop video files")
    o.add_argument("--no-live", action="store_true", help="no live terminal view")
    o.add_argument("--print-schema", action="store_true", help="print the JSON-lines schema and exit")
    o.add_argument("--debug", action="store_true", help="show tracebacks")
    o.add_argument("--max-retries", type=int, default=None,
                   help="reconnect attempts per live source before it is 'failed' (default: forever)")
    o.add_argument("--stale-after", type=float, default=None,
                   help="seconds without a new frame before a live camera is 'stale' and UNKNOWN (default: 3 frame "
                        "intervals, at least 2)")
    m = p.add_argument_group("monitoring (docs/monitoring.md)")
    m.add_argument("--config", type=Path, default=None,
                   help="YAML file of named cameras, model, decision settings and outputs; flags override it")
    m.add_argument("--print-config", action="store_true",
                   help="print the merged config (file + flags, secrets redacted) and exit")
    m.add_argument("--mqtt", default=None, metavar="URL",
                   help="publish states, statuses and FAKE events: mqtt://[user:pass@]host[:port][/prefix]")
    m.add_argument("--webhook", action="append", default=None, metavar="URL",
                   help="POST every FAKE event as JSON to URL (repeatable; adds to the config's webhooks)")
    m.add_argument("--metrics-port", type=int, default=None, metavar="N",
                   help="serve Prometheus /metrics on port N (0 = any free port)")
    m.add_argument("--metrics-host", default=None, help="address for /metrics (default 0.0.0.0)")
    m.add_argument("--http", default=None, metavar="[HOST:]PORT",
                   help="serve the live dashboard, its JSON API and /metrics on one port (docs/dashboard.md); a "
                        "bare PORT listens on 127.0.0.1 only, any other address must be given, e.g. 0.0.0.0:8080")
    m.add_argument("--http-token", default=None, metavar="TOKEN",
                   help="require this token (Authorization: Bearer, or ?token=) on every dashboard request; "
                        "default: $FAKEWATCH_HTTP_TOKEN when set")
    m.add_argument("--snapshots", default=None, metavar="DIR",
                   help="save JPEG evidence (frame with the face box, and the face crop) of each FAKE episode")
    p.set_defaults(func=_run_watch)
    _track_explicit(p)


def _track_explicit(p: argparse.ArgumentParser) -> None:
    """Flags that a config file can also set get no argparse default, so `_run_watch` can tell which the user gave
    (those override the file); the real defaults are filled in by :func:`fill_defaults`."""
    from fakewatch.runtime.config_keys import CLI_KEYS

    defaults = {}
    for action in p._actions:
        if action.dest in CLI_KEYS or action.dest == "no_pace":
            defaults[action.dest] = action.default
            action.default = argparse.SUPPRESS
    p.set_defaults(_watch_defaults=defaults)


def fill_defaults(args: argparse.Namespace) -> set[str]:
    """Give suppressed flags their defaults; returns the dests the user set on the command line."""
    defaults = getattr(args, "_watch_defaults", {})
    explicit = {d for d in defaults if hasattr(args, d)}
    for dest, value in defaults.items():
        if not hasattr(args, dest):
            setattr(args, dest, value)
    return explicit


def apply_config(cfg: Any, args: argparse.Namespace) -> None:
    """Write the merged config back onto ``args``, so the flag-driven code below runs the merged settings."""
    from fakewatch.runtime.config_keys import CLI_KEYS

    for dest, path in CLI_KEYS.items():
        node: Any = cfg
        for key in path:
            node = getattr(node, key, None) if node is not None else None
        if dest in ("mqtt", "metrics_port", "metrics_host", "snapshots", "http", "http_token"):
            continue                      # read from cfg by runtime/outputs.py
        as_path = dest == "model" or (dest == "face_detector" and "://" not in str(node))   # Path() eats grpc://
        setattr(args, dest, Path(node) if as_path and node is not None else node)
    args.no_pace = not cfg.pace


def _int_arg(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{flag} must be a whole number or 'auto', got {text!r}") from None


def parse_window(text: str) -> tuple[float, str]:
    """'2s', '1.5 s', '500ms', '30f', '30 frames' -> (value, unit)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|sec|secs|seconds|ms|f|frame|frames)\s*", str(text).lower())
    if not m:
        raise ValueError(f"--window {text!r}: expected seconds like '2s' / '500ms' or frames like '30f'")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "ms":
        return value / 1e3, "s"
    if unit.startswith("f"):
        if value != int(value) or value < 1:
            raise ValueError(f"--window {text!r}: a frame window needs a whole number >= 1")
        return int(value), "frames"
    return value, "s"


def _source_opts(uri: str, wanted: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``wanted`` options that this source kind accepts (pace/loop mean nothing to a camera)."""
    from fakewatch.streams import registry

    for kind, matches, target in registry.KINDS:
        if matches(uri):
            params = inspect.signature(registry._load(kind, target).__init__).parameters
            return {k: v for k, v in wanted.items() if k in params}
    return {}


def resolve_model(model: Path | None) -> Path:
    if model is not None:
        return model
    if DEMO_MODEL.is_file():
        return DEMO_MODEL
    raise FileNotFoundError(f"no --model given and the bundled demo model ({DEMO_MODEL}) is not installed; pass "
                            f"--model PATH (an .onnx from `fakewatch export onnx`, a TensorRT plan, or a checkpoint)")


def _run_watch(args: argparse.Namespace) -> int:
    from fakewatch.runtime.alerts import ALERT_SCHEMA, JsonlSink, LiveView
    from fakewatch.runtime.backends import artifact_backend, load_runner
    from fakewatch.runtime.decision import DecisionConfig
    from fakewatch.runtime.pipeline import Pipeline, WatchConfig, check_watchable
    from fakewatch.streams import open_source

    from fakewatch.runtime.config import merge_args

    explicit = fill_defaults(args)
    if args.http_token is not None and args.http is None and args.config is None:
        raise ValueError("--http-token protects the dashboard: add --http [HOST:]PORT to serve it")
    if args.print_schema:
        print(json.dumps(ALERT_SCHEMA, indent=2))
        return 0
    conf, refs, cli_names = merge_args(args, explicit)
    if args.print_config:
        from fakewatch.runtime.config import dump_yaml

        print(dump_yaml(conf, refs), end="")
        return 0
    apply_config(conf, args)
    from fakewatch.runtime.malloc_tuning import limit_malloc_arenas

    limit_malloc_arenas()      # before reader threads exist: keeps RSS flat over months of reconnects
    for name in ("batch", "max_faces", "detect_every"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.max_wait_ms is not None and args.max_wait_ms < 0:
        raise ValueError(f"--max-wait-ms must be >= 0, got {args.max_wait_ms}")
    window, unit = parse_window(args.window)
    if args.backend == "triton":
        from fakewatch.runtime.backends.triton_runner import TritonRunner

        if args.model is not None or args.device or args.threads or args.streams:
            raise ValueError("--backend triton runs the model on the Triton server: drop --model/--device/--threads/"
                             "--streams (the server's config decides them), pass --triton-url and --triton-model")
        runner = TritonRunner.connect(args.triton_url, args.triton_model, shm=args.triton_shm,
                                      stream=args.triton_stream)
        model, backend = runner.artifact, "triton"
    else:
        model = resolve_model(args.model)
        backend = args.backend or artifact_backend(model)
    runner_opts: dict[str, Any] = {}
    if args.device is not None:
        runner_opts["device"] = args.device
    if args.threads:
        runner_opts[THREAD_OPTION.get(backend, "threads")] = args.threads
    if args.streams is not None:
        if backend not in STREAMS_BACKENDS:
            raise ValueError(f"--streams applies to the {' and '.join(STREAMS_BACKENDS)} backends; {model} runs on "
                             f"{backend}")
        runner_opts["streams"] = args.streams if args.streams == "auto" else _int_arg("--streams", args.streams)
    if backend != "triton":
        runner = load_runner(model, backend, **runner_opts)
    check_watchable(runner.spec, model)
    spec = runner.spec
    enter = spec.threshold + 0.1 if args.enter is None else args.enter
    leave = spec.threshold - 0.1 if args.leave is None else args.leave
    decision = DecisionConfig(window=window, window_unit=unit, aggregation=args.aggregate,
                              enter=min(1.0, enter), leave=max(0.0, leave), min_duration_s=args.min_duration)

    cameras = conf.enabled_cameras()
    if not cameras:
        if conf.cameras:
            raise ValueError(f"every camera in {args.config} has enabled: false; enable one or pass a SOURCE")
        cameras = {"demo": conf.cameras.get("demo") or _demo_camera()}
    wanted = {"pace": not args.no_pace}
    if args.loop:
        wanted["loop"] = True
    # command-line sources keep their (redacted) URI as stream id; config cameras are known by their name
    sources = [open_source(c.source, None if name in cli_names else name, **_source_opts(c.source, wanted))
               for name, c in cameras.items()]
    ids = [s.id for s in sources]
    for src, cam in zip(sources, cameras.values()):
        if cam.max_retries is not None:      # per camera; --max-retries / max_retries: is every other one's
            from fakewatch.streams.backoff import Backoff

            src.backoff = Backoff(max_retries=cam.max_retries)

    sinks = []
    if args.json:
        sinks.append(JsonlSink(args.json))
    live_out = sys.stderr
    if not args.no_live:
        sinks.append(LiveView(live_out))
    cfg = WatchConfig(batch=args.batch, max_wait_ms=args.max_wait_ms, decision=decision,
                      status_interval_s=args.status_interval, duration_s=args.duration,
                      detect_every=args.detect_every, hold_s=args.hold, max_faces=args.max_faces,
                      max_detect_every=args.max_detect_every, reader_max_height=args.reader_max_height,
                      decode_threads=args.decode_threads,
                      face_detector=str(args.face_detector) if args.face_detector else None,
                      emit_frames=args.frames, stale_after_s=conf.stale_after, max_retries=conf.max_retries,
                      stale_after_by_stream={sid: c.stale_after for sid, c in zip(ids, cameras.values())
                                             if c.stale_after is not None},
                      detect_every_by_stream={sid: c.detect.every for sid, c in zip(ids, cameras.values())
                                              if c.detect.every is not None})
    from fakewatch.runtime.outputs import build_monitor

    monitor = build_monitor(conf, model.name, runner.name, ids, threshold=spec.threshold)
    if monitor is not None:
        sinks.append(monitor)
    stop = threading.Event()
    pipeline = Pipeline(sources, runner, cfg, sinks, stop_event=stop, model_name=model.name)

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():            # second Ctrl-C: give up on the clean shutdown
            raise KeyboardInterrupt
        print(f"\nfakewatch watch: {signal.Signals(signum).name}, stopping (again to force)", file=sys.stderr)
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if monitor is not None:
            monitor.start()
        summary = pipeline.run()
    finally:
        if monitor is not None:
            monitor.close()              # idempotent: the pipeline closes its sinks on a normal end
        for s, h in previous.items():
            signal.signal(s, h)
    print(summary.text(), file=sys.stderr)
    if (getattr(runner, "server_timing", None) or {}).get("requests"):   # Triton's own queue/compute statistics
        print(f"  server: {json.dumps(runner.server_timing)}", file=sys.stderr)
    if summary.all_sources_failed:     # a monitor that watched nothing must not look like a success to systemd/CI
        why = "; ".join(f"{sid}: {msg}" for sid, msg in summary.failed_sources().items())
        print(f"fakewatch watch: error: every source failed ({why}); check the URLs/paths with "
              f"`fakewatch probe SOURCE`", file=sys.stderr)
        return EXIT_ALL_SOURCES_FAILED
    return 0


def _demo_camera() -> Any:
    from fakewatch.runtime.config import CameraSettings

    return CameraSettings(source="demo")
