"""``fakewatch probe SOURCE...``: open sources the way `watch` does, read them for a few seconds and report what they
are and how they behave (resolution, nominal vs measured fps, drops, reconnects, events). The quick answer to "is my
camera URL right?". Imports nothing heavy (numpy + OpenCV only, inside the command)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe", help="check sources: open them, read a few seconds, report size, fps, drops and errors",
        description="Open each SOURCE (webcam index or /dev/videoN, rtsp://..., http(s)://..., a video file, or "
                    "'demo'), read for --seconds and print its kind, resolution, nominal and measured fps, frames "
                    "read/dropped and state changes. Exit status 1 when any source delivered no frame. Credentials "
                    "in URLs are never printed.")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("--seconds", type=float, default=5.0, help="how long to read (default 5)")
    p.add_argument("--no-pace", action="store_true", help="read files as fast as possible instead of at their fps")
    p.add_argument("--loop", action="store_true", help="loop files")
    p.add_argument("--transport", choices=("tcp", "udp"), default=None, help="RTSP transport (default tcp)")
    p.add_argument("--open-timeout", type=float, default=None, metavar="S",
                   help="network open timeout in seconds (default 10)")
    p.add_argument("--read-timeout", type=float, default=5.0, metavar="S",
                   help="no frame for this long = stream lost (default 5)")
    p.add_argument("--width", type=int, default=None, help="webcam: requested width")
    p.add_argument("--height", type=int, default=None, help="webcam: requested height")
    p.add_argument("--fps", type=float, default=None, help="webcam: requested fps; file: pacing fps override")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run_probe)


def _opts_for(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    """The options from the command line that this source kind accepts."""
    import inspect

    from fakewatch.streams import registry

    wanted: dict[str, Any] = {"pace": not args.no_pace, "loop": args.loop, "transport": args.transport,
                              "open_timeout_s": args.open_timeout, "width": args.width, "height": args.height,
                              "fps": args.fps}
    for kind, matches, target in registry.KINDS:
        if matches(uri):
            params = inspect.signature(registry._load(kind, target).__init__).parameters
            return {k: v for k, v in wanted.items() if k in params and v is not None}
    return {}


def run_probe(args: argparse.Namespace) -> int:
    from fakewatch.streams import SourceGroup, open_source
    from fakewatch.streams.backoff import Backoff

    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    sources = [open_source(u, **_opts_for(u, args)) for u in args.sources]   # bad input fails here, one line
    events = []
    group = SourceGroup(sources, on_event=events.append, read_timeout_s=args.read_timeout,
                        backoff=Backoff(initial_s=0.5, max_s=2.0))
    t0 = time.monotonic()
    group.start()
    try:
        end = t0 + args.seconds
        while time.monotonic() < end and not group.all_finished:
            group.wait_frames(min(0.2, max(0.0, end - time.monotonic())))
    finally:
        stats, infos = group.stats(), group.info()
        group.stop()
    report = {}
    for sid, st in stats.items():
        info = infos[sid]
        report[sid] = {
            "kind": info.kind, "uri": info.uri, "live": info.live, "width": st.width or info.width,
            "height": st.height or info.height, "nominal_fps": info.fps, "measured_fps": st.fps,
            "frames": st.read, "dropped": st.dropped, "reconnects": st.reconnects, "state": st.state,
            "last_error": st.last_error,
            "events": [{"t": round(e.ts - t0, 3), "state": e.state, "message": e.message}
                       for e in events if e.source_id == sid],
        }
    if args.json:
        print(json.dumps({"seconds": args.seconds, "sources": report}, indent=2))
    else:
        _print_text(report, sys.stdout)
    return 0 if all(r["frames"] > 0 for r in report.values()) else 1


def _print_text(report: dict[str, dict[str, Any]], out: Any) -> None:
    for sid, r in report.items():
        size = f"{r['width']}x{r['height']}" if r["width"] else "?"
        nominal = f"{r['nominal_fps']:g}" if r["nominal_fps"] else "?"
        print(f"{sid}  [{r['kind']}{', live' if r['live'] else ''}]  {size}  nominal {nominal} fps  "
              f"measured {r['measured_fps']:.1f} fps  frames {r['frames']}  dropped {r['dropped']}  "
              f"reconnects {r['reconnects']}  state {r['state']}", file=out)
        for e in r["events"]:
            print(f"    {e['t']:7.2f}s  {e['state']:<12} {e['message']}", file=out)
