"""Live OpenCV sources: webcams (V4L2 on Linux) and network streams (RTSP/RTSPS/HTTP(S)/... via FFmpeg).

Both are `live`: the reader thread reconnects them when they fail. Both keep OpenCV's own buffering minimal so the
frame handed out is the newest one the decoder has (latency is then governed by the reader's newest-wins slot).
"""
from __future__ import annotations

import errno
import glob
import logging
import os
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from fakewatch.streams.diagnose import diagnose_http, diagnose_rtsp

#: server answers that mean "this source is misconfigured" (not "try later"): a never-seen source fails at once
REFUSALS = ("RTSP 401", "RTSP 403", "RTSP 404", "HTTP 401", "HTTP 403", "HTTP 404", "serves a web page")
from fakewatch.streams.ffmpeg_options import build as build_ffmpeg_options
from fakewatch.streams.ffmpeg_options import ffmpeg_options
from fakewatch.streams.source import RawRead, Source, SourceError, decode_params

log = logging.getLogger("fakewatch.streams")

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935, "rtmps": 443}
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt", "udp", "tcp")


def as_bgr(image: np.ndarray) -> np.ndarray:
    """OpenCV usually gives BGR uint8 already; normalise the odd grey / BGRA / 16-bit cases."""
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1.0, float(np.iinfo(image.dtype).max))
                                    if np.issubdtype(image.dtype, np.integer) else 255.0)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def sane_fps(value: float) -> float | None:
    """Containers/streams report 0, NaN or the 90 kHz clock when they do not know the rate."""
    return float(value) if value and np.isfinite(value) and 0.5 <= value <= 300.0 else None


class NetworkSource(Source):
    """RTSP/RTSPS/HTTP(S) (MJPEG, HLS, ...)/RTMP through OpenCV's FFmpeg backend.

    Options: `transport` ("tcp" default, or "udp") for RTSP; `open_timeout_s`, `read_timeout_s` (OpenCV's
    interrupt-callback timeouts, so `open()`/`read()` return within them); `low_latency` (FFmpeg nobuffer /
    low_delay); `ffmpeg_options` (extra "key": "value" demuxer options); `probe` (check the TCP port first to give a
    precise "refused / unreachable / unknown host" error).
    """

    live = True

    def __init__(self, uri: str, source_id: str | None = None, *, transport: str = "tcp",
                 open_timeout_s: float = 10.0, read_timeout_s: float | None = None, low_latency: bool = True,
                 ffmpeg_options: dict[str, str] | None = None, probe: bool = True) -> None:
        super().__init__(uri, source_id)
        parts = urlsplit(self._uri)
        self.scheme = parts.scheme.lower()
        self.kind = "rtsp" if self.scheme.startswith("rtsp") else ("http" if self.scheme.startswith("http")
                                                                    else self.scheme)
        try:
            port = parts.port
        except ValueError as e:
            raise SourceError(f"{self.uri}: invalid port in URL ({e})") from None
        if not parts.hostname:
            raise SourceError(f"{self.uri}: no host in URL; expected e.g. rtsp://192.168.1.10:554/stream")
        if transport not in ("tcp", "udp", "udp_multicast", "http", "https"):
            raise SourceError(f"{self.uri}: transport must be tcp, udp, udp_multicast, http or https, got "
                              f"{transport!r}")
        self.host: str = parts.hostname
        self.port: int | None = port or DEFAULT_PORTS.get(self.scheme)
        self.transport = transport
        self.open_timeout_s = float(open_timeout_s)
        self.read_timeout_s = read_timeout_s     # None: the SourceGroup sets its read_timeout_s
        self.low_latency = low_latency
        self.extra_options = dict(ffmpeg_options or {})
        self.probe = probe
        self._cap: Any = None

    def capture_options(self) -> str:
        opts: dict[str, str] = {}
        if self.scheme.startswith("rtsp"):
            opts["rtsp_transport"] = self.transport
        if self.low_latency:
            # no demuxer-side buffering: decode what arrived, hand it out now. analyzeduration: OpenCV serializes
            # FFmpeg opens inside a process, and the default 5 s probe made 4 cameras reconnect in ~12 s (measured
            # by benchmarks/soak.py); 0.5 s still sees the SDP's SPS/PPS and the first frames
            opts.update({"fflags": "nobuffer", "flags": "low_delay", "max_delay": "500000",
                         "analyzeduration": "500000"})
        opts.update(self.extra_options)
        return build_ffmpeg_options(opts)

    def _probe_tcp(self) -> None:
        if not self.probe or self.port is None or self.scheme in ("udp", "srt"):
            return
        timeout = max(0.5, min(self.open_timeout_s, 5.0))
        where = f"{self.host}:{self.port}"
        try:
            socket.create_connection((self.host, self.port), timeout=timeout).close()
        except socket.gaierror as e:
            raise SourceError(f"cannot open {self.uri}: unknown host {self.host!r} ({e.strerror}); tried DNS lookup "
                              f"of {self.host!r}. Check the address.") from None
        except ConnectionRefusedError:
            raise SourceError(f"cannot open {self.uri}: connection refused by {where}; tried a TCP connect. Is the "
                              f"camera/server running and is {self.port} its {self.scheme.upper()} port?") from None
        except (socket.timeout, TimeoutError):
            raise SourceError(f"cannot open {self.uri}: no answer from {where} within {timeout:.1f} s; tried a TCP "
                              f"connect. Host down or firewalled?") from None
        except OSError as e:
            what = {errno.EHOSTUNREACH: "host unreachable", errno.ENETUNREACH: "network unreachable"}.get(
                e.errno or 0, e.strerror or str(e))
            raise SourceError(f"cannot open {self.uri}: {what} ({where}); tried a TCP connect. Check the "
                              f"network route to the camera.") from None

    def open(self) -> None:
        self.close()
        self._probe_tcp()
        read_timeout = self.read_timeout_s if self.read_timeout_s is not None else 5.0
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000), *decode_params(self.decode_threads)]
        t0 = time.monotonic()
        with ffmpeg_options(self.capture_options()):
            cap = cv2.VideoCapture(self._uri, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            elapsed = time.monotonic() - t0
            self._explain_open_failure()
            rtsp = self.scheme.startswith("rtsp")
            raise SourceError(
                f"cannot open {self.uri}: the server answered on {self.host}:{self.port} but OpenCV/FFmpeg could not "
                f"open the stream{f' over {self.transport.upper()}' if rtsp else ''} (gave up after {elapsed:.1f} s; "
                f"open timeout {self.open_timeout_s:g} s). Check the stream path, credentials and codec"
                f"{', or try transport=' + repr('udp' if self.transport == 'tcp' else 'tcp') if rtsp else ''}.")
        self._cap = cap
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        self.fps = sane_fps(cap.get(cv2.CAP_PROP_FPS))

    def _explain_open_failure(self) -> None:
        """Raise a precise SourceError when the server itself says what is wrong (401 / 404 / ...)."""
        timeout = min(3.0, self.open_timeout_s)
        if self.scheme == "rtsp":
            reason, how = diagnose_rtsp(self._uri, timeout), "RTSP DESCRIBE"
        elif self.scheme in ("http", "https"):
            reason, how = diagnose_http(self._uri, timeout), "HTTP GET"
        else:
            return
        if reason:
            raise SourceError(f"cannot open {self.uri}: {reason}; tried {how} on {self.host}:{self.port}",
                              permanent=any(mark in reason for mark in REFUSALS))

    def read(self) -> RawRead | None:
        if self._cap is None:
            raise SourceError(f"{self.uri}: read() before open()")
        ok, image = self._cap.read()
        if not ok or image is None:
            timeout = self.read_timeout_s if self.read_timeout_s is not None else 5.0
            raise SourceError(f"{self.uri}: stream lost (no frame within the {timeout:g} s read timeout or "
                              f"the connection closed)")
        pos = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        return RawRead(as_bgr(image), source_ts=pos / 1000.0 if pos and pos > 0 else None)

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def webcam_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


class WebcamSource(Source):
    """A local camera: `0`, `1`, ... or `/dev/videoN`. Options: `width`, `height`, `fps` (requested; the driver may
    pick the closest mode; `info` reports what it gave), `fourcc` (e.g. "MJPG" for high resolutions over USB 2),
    `read_timeout_s`."""

    kind = "webcam"
    live = True

    def __init__(self, uri: str, source_id: str | None = None, *, width: int | None = None,
                 height: int | None = None, fps: float | None = None, fourcc: str | None = None,
                 read_timeout_s: float | None = None) -> None:
        super().__init__(uri, source_id if source_id is not None else f"webcam:{uri}")
        s = str(uri).strip()
        if s.isdigit():
            self.index = int(s)
            self.device = f"/dev/video{self.index}" if sys.platform.startswith("linux") else None
        else:
            self.device = s
            tail = s[len("/dev/video"):] if s.startswith("/dev/video") else ""
            self.index = int(tail) if tail.isdigit() else None
        if fourcc is not None and len(fourcc) != 4:
            raise SourceError(f"webcam {s}: fourcc must be 4 characters like 'MJPG', got {fourcc!r}")
        self.req_width, self.req_height, self.req_fps, self.fourcc = width, height, fps, fourcc
        self.read_timeout_s = read_timeout_s
        self._cap: Any = None
        self._check_device()

    def _check_device(self) -> None:
        if self.device is None:          # not Linux: only opening can tell
            return
        if not os.path.exists(self.device):
            found = webcam_devices()
            raise SourceError(
                f"webcam {self._uri}: no device {self.device} (video devices here: "
                f"{', '.join(found) if found else 'none'}). Plug in a camera, pass a device that exists, or use a "
                f"file / rtsp:// URL / 'demo' instead.")
        if not os.access(self.device, os.R_OK | os.W_OK):
            raise SourceError(f"webcam {self._uri}: {self.device} exists but is not accessible to this user; add "
                              f"the user to the 'video' group (sudo usermod -aG video $USER) and log in again.")

    def open(self) -> None:
        self.close()
        self._check_device()
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        target: Any = self.index if self.index is not None else self.device
        cap = cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"webcam {self._uri}: could not open {self.device or target} with "
                              f"{'V4L2' if api == cv2.CAP_V4L2 else 'the default backend'} (busy in another "
                              f"program, or not a capture device?).")
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        if self.req_width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.req_width)
        if self.req_height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.req_height)
        if self.req_fps:
            cap.set(cv2.CAP_PROP_FPS, self.req_fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)      # driver queue of 1: the frame we get is the newest
        if self.read_timeout_s is not None:
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000))
        self._cap = cap
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        self.fps = sane_fps(cap.get(cv2.CAP_PROP_FPS))
        if (self.req_width and self.width != self.req_width) or (self.req_height and self.height != self.req_height):
            log.info("webcam %s: asked for %sx%s, driver gave %sx%s", self.id, self.req_width, self.req_height,
                     self.width, self.height)

    def read(self) -> RawRead | None:
        if self._cap is None:
            raise SourceError(f"webcam {self._uri}: read() before open()")
        ok, image = self._cap.read()
        if not ok or image is None:
            raise SourceError(f"webcam {self._uri}: no frame from {self.device or self.index} (unplugged?)")
        return RawRead(as_bgr(image))

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
