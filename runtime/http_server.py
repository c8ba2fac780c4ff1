"""One HTTP port for `fakewatch watch --http`: the dashboard page, its JSON API, the live update stream (Server-Sent
Events) and Prometheus ``/metrics``.

The standard library's ``ThreadingHTTPServer`` (one daemon thread per connection) serves it: no dependency, and the
work per request is a dict lookup, a cached JPEG or a small JSON document. Read-only: GET and HEAD only. With a token
every path but the page's three static files needs ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (the page
passes its own ``?token=`` on to the API); request lines are never logged, so the token is not printed. Routes are a table (see ``ROUTES``) and
``docs/dashboard.md`` documents them.
"""
from __future__ import annotations

import hmac
import json
import logging
import queue
import re
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("fakewatch.runtime.http_server")

STATIC_DIR = Path(__file__).resolve().parent / "assets" / "dashboard"
#: the page's files: URL path -> (file, content type). Nothing else on disk is reachable.
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
          "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}
LOOPBACK = ("127.0.0.1", "::1", "localhost")
KEEPALIVE_S = 15.0


@dataclass(frozen=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(f"--http port must be 0..65535 (0 = any free port), got {self.port}")
        if self.token is not None and not self.token.strip():
            raise ValueError("--http-token is empty; pass a non-empty token or leave it out")

    def __repr__(self) -> str:           # never show the token
        return f"HttpSettings(host={self.host!r}, port={self.port}, token={'***' if self.token else None})"

    @property
    def public(self) -> bool:
        return self.host not in LOOPBACK


def parse_listen(text: str) -> tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); 'HOST:PORT'; '[::1]:8080'. Any host but loopback must be written out."""
    m = re.fullmatch(r"\s*(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):)?(\d{1,5})\s*", str(text))
    if not m:
        raise ValueError(f"--http {text!r}: expected PORT or HOST:PORT, e.g. 8080 (127.0.0.1 only) or "
                         f"0.0.0.0:8080 (every interface)")
    host = (m.group(1) or "127.0.0.1").strip("[]")
    port = int(m.group(2))
    if port > 65535:
        raise ValueError(f"--http {text!r}: port must be 0..65535")
    return host, port


class _Error(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class DashboardServer:
    """Serves ``dashboard`` (a :class:`fakewatch.runtime.dashboard.Dashboard`) and, when given, ``metrics`` (a
    :class:`fakewatch.runtime.metrics_output.MetricsOutput` whose registry is rendered at ``/metrics``)."""

    def __init__(self, settings: HttpSettings, dashboard: Any, metrics: Any = None) -> None:
        self.settings = settings
        self.dashboard = dashboard
        self.metrics = metrics
        self.stop_event = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "DashboardServer":
        handler = type("Handler", (_Handler,), {"app": self})
        try:
            httpd = ThreadingHTTPServer((self.settings.host, self.settings.port), handler)
        except OSError as e:
            raise RuntimeError(f"--http {self.settings.host}:{self.settings.port}: {e.strerror or e}; pick a free "
                               f"port (0 = any) or another address") from None
        httpd.daemon_threads = True        # a hung client must not block the exit
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="fakewatch-http", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._httpd.server_address[1] if self._httpd is not None else self.settings.port

    @property
    def url(self) -> str:
        host = self.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
        return f"http://{shown}:{self.port}/"

    def close(self) -> None:
        self.stop_event.set()
        self.dashboard.broadcast.close()        # wakes the live-update handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)

    # ------------------------------------------------------------------ auth
    def authorized(self, headers: Any, query: dict[str, list[str]]) -> bool:
        token = self.settings.token
        if token is None:
            return True
        given = ""
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):].strip()
        elif query.get("token"):
            given = query["token"][0]
        return hmac.compare_digest(given.encode(), token.encode())

    # ------------------------------------------------------------------ routes
    def route(self, parts: list[str], query: dict[str, list[str]]) -> tuple[int, str, bytes, dict[str, str]]:
        """(status, content type, body, extra headers) for a GET of the path ``parts`` (unquoted segments)."""
        for pattern, fn in ROUTES:
            if len(pattern) == len(parts) and all(p == "*" or p == x for p, x in zip(pattern, parts)):
                args = [x for p, x in zip(pattern, parts) if p == "*"]
                return fn(self, query, *args)
        raise _Error(HTTPStatus.NOT_FOUND, f"no such path /{'/'.join(parts)}; the API: /api/cameras, "
                                           f"/api/cameras/<name>/latest.jpg, /api/events, "
                                           f"/api/events/<id>/snapshot.jpg, /api/stream, /metrics (docs/dashboard.md)")

    def _static(self, query: Any, name: str = "") -> tuple:
        key = "/" + name
        if key not in STATIC:
            raise _Error(HTTPStatus.NOT_FOUND, f"no such file /{name}")
        file, ctype = STATIC[key]
        return 200, ctype, (STATIC_DIR / file).read_bytes(), {"Cache-Control": "no-cache"}

    def _cameras(self, query: Any) -> tuple:
        d = self.dashboard
        return _json({"model": d.model, "backend": d.backend, "threshold": d.threshold, "cameras": d.cameras()})

    def _camera(self, query: Any, name: str) -> tuple:
        tile = self._tile(name)
        return _json(tile.as_dict())

    def _tile(self, name: str) -> Any:
        tile = self.dashboard.tile(name)
        if tile is None:
            names = ", ".join(self.dashboard.camera_names()) or "none yet"
            raise _Error(HTTPStatus.NOT_FOUND, f"no camera {name!r}; cameras: {names} (names are URL-encoded)")
        return tile

    def _latest(self, query: Any, name: str) -> tuple:
        self._tile(name)
        got = self.dashboard.latest_jpeg(name)
        if got is None:
            raise _Error(HTTPStatus.SERVICE_UNAVAILABLE, f"camera {name!r} has no decided frame yet; retry shortly")
        jpeg, seq = got
        return 200, "image/jpeg", jpeg, {"Cache-Control": "no-store", "X-Frame-Seq": str(seq)}

    def _events(self, query: dict[str, list[str]]) -> tuple:
        limit = query.get("limit", [None])[0]
        try:
            n = None if limit is None else int(limit)
            if n is not None and n < 1:
                raise ValueError
        except ValueError:
            raise _Error(HTTPStatus.BAD_REQUEST, f"limit={limit!r}: pass a whole number >= 1") from None
        camera = query.get("camera", [None])[0]
        return _json({"events": self.dashboard.event_list(n, camera)})

    def _metrics(self, query: Any) -> tuple:
        if self.metrics is None:
            raise _Error(HTTPStatus.NOT_FOUND, "metrics are off")
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry), {}


def _json(data: Any) -> tuple:
    return 200, "application/json", json.dumps(data, separators=(",", ":")).encode(), {"Cache-Control": "no-store"}


def _evidence(kind: str) -> Callable:
    def serve(app: "DashboardServer", query: Any, event_id: str) -> tuple:
        try:
            jpeg = app.dashboard.evidence(event_id, kind)
        except KeyError:
            raise _Error(HTTPStatus.NOT_FOUND, f"no event {event_id!r} among the newest "
                                               f"{app.dashboard.settings.max_events}; list them at /api/events") \
                from None
        if jpeg is None:
            raise _Error(HTTPStatus.NOT_FOUND, f"event {event_id!r} has no {kind} evidence (yet); run with "
                                               f"--snapshots DIR to keep it on disk")
        return 200, "image/jpeg", jpeg, {"Cache-Control": "no-cache"}
    return serve


#: path pattern ('*' = one segment, passed to the handler) -> handler. /api/stream is handled by _Handler itself.
ROUTES: tuple[tuple[tuple[str, ...], Callable], ...] = (
    ((), DashboardServer._static),
    (("api", "cameras"), DashboardServer._cameras),
    (("api", "cameras", "*"), DashboardServer._camera),
    (("api", "cameras", "*", "latest.jpg"), DashboardServer._latest),
    (("api", "events"), DashboardServer._events),
    (("api", "events", "*", "snapshot.jpg"), _evidence("frame")),
    (("api", "events", "*", "crop.jpg"), _evidence("crop")),
    (("metrics",), DashboardServer._metrics),
    (("*",), DashboardServer._static),          # last: the page's own files
)


class _Handler(BaseHTTPRequestHandler):
    app: DashboardServer
    protocol_version = "HTTP/1.1"
    server_version = "fakewatch"

    def log_message(self, format: str, *args: Any) -> None:
        pass        # request lines can carry ?token=: never print them

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, "application/json",
                   _err(f"{self.command} is not allowed: the dashboard is read-only (GET, HEAD)"), {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _serve(self, head: bool) -> None:
        app = self.app
        app.requests += 1
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            # the page's own files carry no camera data: public, so a browser can load them before it sends the token
            if url.path not in STATIC and not app.authorized(self.headers, query):
                raise _Error(HTTPStatus.UNAUTHORIZED, "this dashboard needs its token: send 'Authorization: Bearer "
                                                      "TOKEN' or add ?token=TOKEN to the URL")
            if parts == ["api", "stream"]:
                return self._stream(head)
            status, ctype, body, headers = app.route(parts, query)
        except _Error as e:
            extra = {"WWW-Authenticate": "Bearer"} if e.status == HTTPStatus.UNAUTHORIZED else {}
            return self._send(e.status, "application/json", _err(e.message), extra, head)
        except Exception as e:        # a bug in one request must not take the server down
            log.exception("dashboard request failed")
            return self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "application/json", _err(f"internal error: {e}"),
                              {}, head)
        self._send(status, ctype, body, headers, head)

    def _send(self, status: int, ctype: str, body: bytes, headers: dict[str, str], head: bool = False) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stream(self, head: bool) -> None:
        """Server-Sent Events: 'hello' (the full state), then state/status/score/camera/event messages as they happen,
        a comment line every KEEPALIVE_S so proxies keep the connection."""
        app = self.app
        q = app.dashboard.broadcast.subscribe()
        if q is None:
            raise _Error(HTTPStatus.SERVICE_UNAVAILABLE, f"{app.dashboard.settings.sse_clients} live-update clients "
                                                         f"are connected already (the cap); close a page or raise "
                                                         f"dashboard.sse_clients")
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            if head:
                return
            hello = {"cameras": app.dashboard.cameras(), "events": app.dashboard.event_list(),
                     "threshold": app.dashboard.threshold}
            self.wfile.write(b"retry: 2000\nevent: hello\ndata: " + json.dumps(hello).encode() + b"\n\n")
            self.wfile.flush()
            while not app.stop_event.is_set():
                try:
                    msg = q.get(timeout=KEEPALIVE_S)
                except queue.Empty:
                    msg = b": keepalive\n\n"
                if msg is None:
                    return
                self.wfile.write(msg)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        finally:
            app.dashboard.broadcast.unsubscribe(q)


def _err(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
