"""A real HTTP server on 127.0.0.1 that records webhook POSTs (headers + JSON body); it can answer a scripted list
of status codes first (e.g. [500, 500] then 200) to exercise retries."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._cond:
                    code = outer.statuses.pop(0) if outer.statuses else 200
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                           "status": code})
                    outer._cond.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self) -> list[dict]:
        with self._cond:
            return [json.loads(r["body"]) for r in self.requests if r["status"] == 200]

    def wait_for(self, n: int, timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= n, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
