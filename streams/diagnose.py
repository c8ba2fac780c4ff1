"""Why did a network open fail? OpenCV only says "not opened" (FFmpeg's reason goes to stderr), so after a failed
open we ask the server ourselves, once, to tell "wrong path" from "wrong credentials":
RTSP: one DESCRIBE (Basic or Digest auth, as the server asks); HTTP(S): one GET (Basic auth).
Plain rtsp:// only (rtsps needs RTSP over TLS).
"""
from __future__ import annotations

import base64
import hashlib
import re
import socket
from urllib.parse import unquote, urlsplit, urlunsplit


def _describe(sock: socket.socket, url: str, cseq: int, auth: str | None) -> tuple[int, dict[str, str]]:
    req = f"DESCRIBE {url} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\nUser-Agent: fakewatch\r\n"
    if auth:
        req += f"Authorization: {auth}\r\n"
    sock.sendall((req + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    m = re.match(r"RTSP/\d\.\d (\d{3})", lines[0] if lines else "")
    if not m:
        raise OSError("not an RTSP answer")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        key = k.strip().lower()
        # keep the first Digest challenge if several WWW-Authenticate headers come
        if key == "www-authenticate" and key in headers and headers[key].lower().startswith("digest"):
            continue
        headers[key] = v.strip()
    return int(m.group(1)), headers


def _auth_header(challenge: str, user: str, password: str, url: str) -> str | None:
    scheme = challenge.split(" ", 1)[0].lower()
    if scheme == "basic":
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if scheme == "digest":
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = params.get("realm", ""), params.get("nonce", "")
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"DESCRIBE:{url}".encode()).hexdigest()
        resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{url}", '
                f'response="{resp}"')
    return None


def diagnose_rtsp(uri: str, timeout: float = 3.0) -> str | None:
    """A short human reason for a failed RTSP open ("stream path not found (RTSP 404)", ...), or None when the
    server accepts the request (then the problem is elsewhere: codec, transport) or cannot be asked."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        return None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else ""
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    clean = urlunsplit(("rtsp", netloc, parts.path or "/", parts.query, ""))
    addr = (parts.hostname, parts.port or 554)

    def ask(cseq: int, auth: str | None) -> tuple[int, dict[str, str]]:
        with socket.create_connection(addr, timeout=timeout) as sock:    # fresh connection: no body to drain
            sock.settimeout(timeout)
            return _describe(sock, clean, cseq, auth)

    try:
        code, headers = ask(1, None)
        if code == 401:
            challenge = headers.get("www-authenticate", "")
            if user is None:
                return ("the server requires credentials (RTSP 401); add them to the URL as USER:PASSWORD@ "
                        "in front of the host")
            auth = _auth_header(challenge, user, password, clean)
            if auth is None:
                return f"the server wants an authentication scheme fakewatch cannot check ({challenge[:20]!r})"
            code, headers = ask(2, auth)
            if code == 401:
                return "the server rejected the user name or password (RTSP 401 Unauthorized)"
    except (OSError, ValueError):
        return None
    if code == 404:
        return f"stream path {parts.path or '/'!r} not found on the server (RTSP 404); check the camera's stream URL"
    if code == 403:
        return "access forbidden (RTSP 403); the account may lack permission for this stream"
    if code >= 400:
        return f"the server answered DESCRIBE with RTSP {code}"
    return None


def diagnose_http(uri: str, timeout: float = 3.0) -> str | None:
    """Same for http(s)://: the HTTP status of one GET, or None when it looks fine / cannot be asked."""
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    req = urllib.request.Request(urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")))
    if parts.username:
        cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
            if ctype.startswith("text/html"):
                return f"the URL serves a web page ({ctype}), not a video stream; use the camera's stream URL"
            return None
    except urllib.error.HTTPError as e:
        if e.code == 401:
            return ("the server rejected the user name or password (HTTP 401)" if parts.username else
                    "the server requires credentials (HTTP 401); add them to the URL as USER:PASSWORD@ in front of "
                    "the host")
        if e.code == 404:
            return f"path {parts.path or '/'!r} not found on the server (HTTP 404); check the stream URL"
        return f"the server answered HTTP {e.code}"
    except (OSError, ValueError):
        return None
