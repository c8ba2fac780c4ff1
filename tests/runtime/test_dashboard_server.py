"""The dashboard's state and its one HTTP port, fed like the monitoring hub feeds them (no model, no browser): JSON API,
newest-frame JPEG (boxes drawn, rate limited, cached), evidence, Server-Sent Events, /metrics, token, bounds."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import numpy as np
import pytest

from fakewatch.runtime.dashboard import Dashboard, DashboardSettings
from fakewatch.runtime.http_server import DashboardServer, HttpSettings, parse_listen


@dataclass
class View:                      # the fields of pipeline.FrameView the dashboard reads
    stream: str
    seq: int
    image: np.ndarray
    boxes: list
    face_probs: list
    state: str
    score: float
    track_ids: list = field(default_factory=list)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def frame(level: int = 90, w: int = 320, h: int = 240) -> np.ndarray:
    return np.full((h, w, 3), level, np.uint8)


@pytest.fixture
def served():
    clock = Clock()
    dash = Dashboard(DashboardSettings(jpeg_fps=2.0, jpeg_width=160, max_events=3, sse_clients=2), threshold=0.5,
                     clock=clock, wall=lambda: 1_700_000_000.0 + clock.t)
    made = []

    def make(token: str | None = None, metrics=None) -> DashboardServer:
        server = DashboardServer(HttpSettings("127.0.0.1", 0, token), dash, metrics)
        dash.server = server
        dash.start({"model": "m.onnx", "backend": "onnxruntime", "cameras": ["front door", "yard"]})
        made.append(server)
        return server

    yield dash, clock, make
    for s in made:
        s.close()


def get(server: DashboardServer, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_cameras_frames_and_boxes(served):
    import cv2

    dash, clock, make = served
    server = make()
    status, _h, body = get(server, "/api/cameras")
    cams = json.loads(body)["cameras"]
    assert status == 200 and [c["name"] for c in cams] == ["front door", "yard"]
    assert cams[0]["state"] == "UNKNOWN" and cams[0]["status"] == "connecting"
    status, _h, body = get(server, "/api/cameras/front%20door/latest.jpg")
    assert status == 503 and "no decided frame yet" in json.loads(body)["error"]

    dash.status("front door", "live", "320x240")
    dash.state("front door", "FAKE", 0.93)
    dash.frame(View("front door", 7, frame(), [(40, 40, 120, 120)], [0.97], "FAKE", 0.93, [5]))
    dash.camera_stats("front door", {"fps": 29.5, "frames": 100, "dropped": 2, "state": "FAKE", "score": 0.93,
                                     "latency_ms": {"total": {"p50": 8.0, "p90": 12.0, "p99": 31.0}}})
    status, headers, body = get(server, "/api/cameras/front%20door/latest.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and headers["X-Frame-Seq"] == "7"
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (120, 160, 3)                           # downscaled to jpeg_width, aspect kept
    edge = img[20, 30:50].astype(int)                           # the box's top edge (scale 0.5): FAKE red (BGR)
    assert (edge[:, 2] > 170).all() and (edge[:, 1] < 110).all(), edge
    assert abs(int(img[40, 40, 0]) - 90) < 12                   # inside the box: the frame's own grey
    tile = json.loads(get(server, "/api/cameras/front%20door")[2])
    assert tile["state"] == "FAKE" and tile["status"] == "live" and tile["fps"] == 29.5 and tile["dropped"] == 2
    assert tile["latency_ms"] == {"p50": 8.0, "p99": 31.0}
    assert tile["faces"] == [{"box": [40, 40, 120, 120], "track": 5, "p_fake": 0.97}]
    assert tile["history"] == [[1_700_000_100.0, 0.93]]
    status, _h, body = get(server, "/api/cameras/porch/latest.jpg")
    assert status == 404 and "cameras: front door, yard" in json.loads(body)["error"]


def test_jpeg_is_encoded_at_most_jpeg_fps_per_camera(served):
    dash, clock, make = served
    server = make()
    dash.frame(View("yard", 1, frame(50), [], [], "REAL", 0.1))
    first = get(server, "/api/cameras/yard/latest.jpg")
    for seq in (2, 3, 4):                                       # new frames within 1/jpeg_fps: the cached JPEG
        dash.frame(View("yard", seq, frame(200), [], [], "REAL", 0.1))
        again = get(server, "/api/cameras/yard/latest.jpg")
        assert again[2] == first[2] and again[1]["X-Frame-Seq"] == "1"
    assert dash.tiles["yard"].encodes == 1
    clock.t += 0.51                                             # the interval has passed: the newest frame
    newer = get(server, "/api/cameras/yard/latest.jpg")
    assert newer[1]["X-Frame-Seq"] == "4" and newer[2] != first[2] and dash.tiles["yard"].encodes == 2
    clock.t += 5                                                # no new frame: nothing to encode
    assert get(server, "/api/cameras/yard/latest.jpg")[2] == newer[2] and dash.tiles["yard"].encodes == 2


def test_events_newest_first_bounded_with_in_memory_evidence(served, tmp_path):
    import cv2

    dash, clock, make = served
    server = make()
    img = frame(120)
    img[50:150, 60:160] = (10, 200, 10)
    dash.frame(View("yard", 1, img, [(60, 50, 160, 150)], [0.99], "FAKE", 0.9))
    after = {"id": "e1", "camera": "yard", "label": "fake", "score": 0.9, "top_score": 0.99, "start_time": 1.0,
             "end_time": None, "box": [60, 50, 160, 150], "face_id": 0, "has_snapshot": False, "snapshot": None,
             "has_clip": False, "model": "m.onnx"}
    dash.event({"type": "new", "before": after, "after": after})
    crop = cv2.imdecode(np.frombuffer(get(server, "/api/events/e1/crop.jpg")[2], np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape[:2] == (100, 100) and crop[50, 50, 1] > 180          # the face region, green
    assert dash.events["e1"].frame is None                                  # encoded: the raw frame is let go
    full = get(server, "/api/events/e1/snapshot.jpg")
    assert full[0] == 200 and cv2.imdecode(np.frombuffer(full[2], np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    # evidence files of a snapshot store win over memory; an event not yet written says so
    path = tmp_path / "e2.jpg"
    path.write_bytes(full[2])
    for i, snap in ((2, {"frame": str(path), "crop": str(tmp_path / "missing.jpg")}), (3, None), (4, None)):
        a = {**after, "id": f"e{i}", "has_snapshot": snap is not None, "snapshot": snap, "start_time": float(i)}
        dash.event({"type": "new", "before": a, "after": a})
    events = json.loads(get(server, "/api/events")[2])["events"]
    assert [e["id"] for e in events] == ["e4", "e3", "e2"]                  # newest first, max_events=3
    assert get(server, "/api/events/e2/snapshot.jpg")[2] == path.read_bytes()
    status, _h, body = get(server, "/api/events/e2/crop.jpg")
    assert status == 404 and "has no crop evidence (yet)" in json.loads(body)["error"]
    status, _h, body = get(server, "/api/events/e1/snapshot.jpg")
    assert status == 404 and "among the newest 3" in json.loads(body)["error"]
    assert dash.events["e3"].frame is not None and get(server, "/api/events/e3/crop.jpg")[0] == 200
    assert dash.events["e3"].frame is None and set(dash.events["e3"].jpeg) == {"frame", "crop"}   # bytes only
    assert [e["id"] for e in json.loads(get(server, "/api/events?limit=1")[2])["events"]] == ["e4"]
    assert get(server, "/api/events?limit=0")[0] == 400
    end = {**after, "id": "e4", "end_time": 9.0}
    dash.event({"type": "end", "before": end, "after": end})
    assert json.loads(get(server, "/api/events?limit=1")[2])["events"][0]["type"] == "end"


def read_sse(sock_file, n: int) -> list[tuple[str, dict]]:
    out, kind = [], None
    while len(out) < n:
        line = sock_file.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            out.append((kind, json.loads(line[6:])))
    return out


def open_sse(server: DashboardServer) -> tuple[socket.socket, object, str]:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(b"GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n")
    f = s.makefile("rb")
    status = f.readline().decode()
    while f.readline() not in (b"\r\n", b""):
        pass
    return s, f, status


def test_live_updates_and_client_cap(served):
    dash, clock, make = served
    server = make()
    s1, f1, st1 = open_sse(server)
    s2, f2, st2 = open_sse(server)
    assert "200" in st1 and "200" in st2
    hello = read_sse(f1, 1)[0]
    assert hello[0] == "hello" and [c["name"] for c in hello[1]["cameras"]] == ["front door", "yard"]
    read_sse(f2, 1)
    status, _h, body = get(server, "/api/stream")                       # the third client: over the cap
    assert status == 503 and "live-update clients" in json.loads(body)["error"]
    dash.state("yard", "REAL", 0.12)
    dash.status("yard", "reconnecting", "rtsp timeout")
    got = read_sse(f1, 2)
    assert got == [("state", {"camera": "yard", "state": "REAL", "score": 0.12}),
                   ("status", {"camera": "yard", "status": "reconnecting", "message": "rtsp timeout"})]
    s2.close()
    dash.state("yard", "FAKE", 0.9)                                      # a closed client does not stop the others
    assert read_sse(f1, 1)[0][1]["state"] == "FAKE"
    server.close()                                                       # the stream ends, the port closes
    assert f1.read().strip() == b""                                  # EOF after the last message
    s1.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


def test_slow_client_is_cut_not_buffered():
    dash = Dashboard(DashboardSettings(sse_queue=4))
    q = dash.broadcast.subscribe()
    for i in range(10):
        dash.state("cam", "REAL", i / 10)
    assert dash.broadcast.clients == 0 and dash.broadcast.cut == 1
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    assert items[-1] is None and len(items) == 4                          # bounded, ends with the end marker


def test_token_read_only_metrics_and_static(served):
    from fakewatch.runtime.metrics_output import MetricsOutput

    dash, clock, make = served
    metrics = MetricsOutput(0, serve=False)
    metrics.start({"model": "m", "backend": "b", "cameras": ["yard"]})
    server = make(token="s3cret", metrics=metrics)
    status, headers, body = get(server, "/api/cameras")
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer" and "s3cret" not in body.decode()
    assert get(server, "/api/cameras?token=wrong")[0] == 401
    assert get(server, "/api/cameras?token=s3cret")[0] == 200
    assert get(server, "/api/cameras", {"Authorization": "Bearer s3cret"})[0] == 200
    status, headers, body = get(server, "/metrics?token=s3cret")
    assert status == 200 and 'fakewatch_camera_fake{camera="yard"} -1.0' in body.decode()
    assert metrics._server is None                                       # no second listener
    status, headers, body = get(server, "/")                  # the page itself holds no data: no token needed
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"dashboard.js" in body
    assert get(server, "/dashboard.js")[1]["Content-Type"].startswith("text/javascript")
    assert get(server, "/..%2Fhttp_server.py?token=s3cret")[0] == 404
    assert get(server, "/http_server.py")[0] == 401
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/events?token=s3cret", data=b"{}",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405 and "read-only" in json.loads(e.value.read())["error"]
    assert "s3cret" not in repr(server.settings)


def test_listen_parsing_and_busy_port():
    assert parse_listen("8080") == ("127.0.0.1", 8080)
    assert parse_listen("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("localhost", "1.2.3.4:", "x:99999"):
        with pytest.raises(ValueError, match="--http"):
            parse_listen(bad)
    assert HttpSettings("0.0.0.0", 1).public and not HttpSettings().public
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"--http 127.0.0.1:{port}: .*pick a free port"):
            DashboardServer(HttpSettings("127.0.0.1", port), Dashboard()).start()


def test_config_and_flags_build_one_port(tmp_path, monkeypatch):
    from fakewatch.runtime.config import ConfigError, from_dict
    from fakewatch.runtime.outputs import build_monitor

    cfg, _ = from_dict({"dashboard": {"listen": "0", "token": "${TOK}", "jpeg_fps": 2}}, env={"TOK": "abc"})
    assert cfg.dashboard.listen == "127.0.0.1:0"
    mon = build_monitor(cfg, "m.onnx", "onnxruntime", ["demo"], threshold=0.7)
    dash = next(o for o in mon.outputs if o.name == "dashboard")
    metrics = next(o for o in mon.outputs if o.name == "metrics")
    assert dash.server.settings.token == "abc" and dash.server.metrics is metrics and not metrics.serve
    assert dash.threshold == 0.7 and dash.settings.jpeg_fps == 2
    mon.start()
    try:
        assert get(dash.server, "/metrics", {"Authorization": "Bearer abc"})[0] == 200
    finally:
        mon.close()
    from fakewatch.runtime.config import dump_yaml

    text = dump_yaml(*from_dict({"dashboard": {"listen": "0.0.0.0:8080", "token": "abc"}}))
    assert "abc" not in text and "***" in text and "0.0.0.0:8080" in text
    with pytest.raises(ConfigError, match="dashboard.listen"):
        from_dict({"dashboard": {"listen": "everywhere"}})


def test_raw_evidence_frames_are_bounded():
    from fakewatch.runtime.dashboard import KEEP_FRAMES

    dash = Dashboard(DashboardSettings(max_events=50))
    dash.start({"cameras": ["cam"]})
    images = [frame(i, 16, 16) for i in range(KEEP_FRAMES + 10)]
    for i, img in enumerate(images):
        dash.frame(View("cam", i, img, [(0, 0, 8, 8)], [0.9], "FAKE", 0.9))
        a = {"id": f"e{i}", "camera": "cam", "box": [0, 0, 8, 8], "has_snapshot": False}
        dash.event({"type": "new", "before": a, "after": a})
    held = [e.id for e in dash.events.values() if e.frame is not None]
    assert held == [f"e{i}" for i in range(10, KEEP_FRAMES + 10)]        # the newest KEEP_FRAMES only
    assert dash.events["e12"].frame is images[12]                         # a reference to the reader's frame, no copy


@pytest.mark.parametrize("argv, message", [
    (["--http", "localhost"], "--http 'localhost': expected PORT or HOST:PORT"),
    (["--http-token", "x"], "--http-token protects the dashboard: add --http"),
])
def test_watch_flags_errors(argv, message, capsys):
    from fakewatch.cli import main

    assert main(["watch", "demo", "--no-live", "--duration", "1", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
