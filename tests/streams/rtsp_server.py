#!/usr/bin/python3
"""A tiny real RTSP server for the streams tests (GStreamer gst-rtsp-server; run with the SYSTEM python3, which has
`gi`). Serves H.264 from videotestsrc (or a video file) on 127.0.0.1.

    /usr/bin/python3 tests/streams/rtsp_server.py --port 0 --fps 25 [--file clip.mp4] [--user u --password p]

Prints `READY <port>` on stdout once it accepts connections; runs until killed (SIGTERM/SIGINT/SIGKILL).
"""
from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def pipeline(args: argparse.Namespace) -> str:
    enc = (f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={max(1, int(args.fps))} bitrate=800 "
           "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1")
    if args.file:
        # decode + re-encode so any container/codec works; loops are not needed for the tests
        return (f"( filesrc location={args.file} ! decodebin ! videoconvert ! videorate ! videoscale "
                f"! video/x-raw,format=I420,framerate={args.fps}/1 ! {enc} )")
    return (f"( videotestsrc is-live=true pattern={args.pattern} ! video/x-raw,format=I420,width={args.width},"
            f"height={args.height},framerate={args.fps}/1 ! {enc} )")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port (printed)")
    ap.add_argument("--path", action="append", default=None,
                    help="mount point; repeat for several streams (each its own client-visible URL; default /test)")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--pattern", default="ball")
    ap.add_argument("--file", default=None)
    ap.add_argument("--user", default=None)
    ap.add_argument("--password", default=None)
    ap.add_argument("--digest", action="store_true", help="Digest instead of Basic authentication")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(args))
    factory.set_shared(True)     # one encoder for all clients (8-sources test connects several)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.digest:
            gi.require_version("GstRtsp", "1.0")
            from gi.repository import GstRtsp

            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(args.user, args.password or "", token)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(perms)
    for path in args.path or ["/test"]:
        server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"ERROR could not bind 127.0.0.1:{args.port}", flush=True)
        return 2
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
