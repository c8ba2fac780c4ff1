"""Bad input to `fakewatch watch`: each case is one clear error, the exit status says whether anything was watched,
and a bad stream never stops the good ones. (RTSP 401/404 and unreachable/unknown hosts are covered at the source
level in tests/streams; an engine built for another GPU/TensorRT in tests/export/test_engine_plan.py.)"""
from __future__ import annotations

import http.server
import json
import shutil
import threading

import pytest

from fakewatch.cli import main
from fakewatch.core.contract import load_spec, write_sidecar
from fakewatch.runtime.pipeline import Pipeline, WatchConfig
from fakewatch.runtime.watch_cli import EXIT_ALL_SOURCES_FAILED
from fakewatch.streams import open_source

from .conftest import write_video


class _Pages(http.server.BaseHTTPRequestHandler):
    """A camera's web UI: an HTML page where the stream should be, and a login-protected stream."""

    def do_GET(self):  # noqa: N802
        if self.path == "/secure.mjpg":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="cam"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<html><body>camera admin</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def web():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_source_failed_exits_non_zero_with_the_reasons(web, bright_onnx, tmp_path, capsys):
    out = tmp_path / "a.jsonl"
    rc = main(["watch", f"{web}/index.html", f"{web}/secure.mjpg", "--model", str(bright_onnx), "--no-live",
               "--json", str(out), "--status-interval", "0", "--duration", "60"])
    err = capsys.readouterr().err
    assert rc == EXIT_ALL_SOURCES_FAILED == 3, err
    assert "every source failed" in err and "serves a web page (text/html" in err and "HTTP 401" in err
    failed = [r for r in _records(out) if r["type"] == "source" and r["state"] == "failed"]
    # refused by the server before ever delivering a frame: failed at once, not retried for the whole minute
    assert len(failed) == 2 and all("not retried" in r["message"] for r in failed)
    assert not [r for r in _records(out) if r["type"] == "source" and r["state"] == "reconnecting"]
    assert _records(out)[-1]["type"] == "summary" and _records(out)[-1]["t"] < 60


def test_a_web_page_source_does_not_stop_the_file_next_to_it(web, bright_onnx, tmp_path, capsys):
    video = write_video(tmp_path / "ok.mp4", frames=30)
    out = tmp_path / "b.jsonl"
    rc = main(["watch", f"{web}/index.html", str(video), "--no-pace", "--model", str(bright_onnx), "--no-live",
               "--json", str(out), "--status-interval", "0", "--duration", "60"])
    assert rc == 0, capsys.readouterr().err
    summary = _records(out)[-1]
    assert summary["streams"][str(video)]["frames"] == 30
    assert summary["streams"][f"{web}/index.html"]["source_state"] == "failed"


def test_corrupt_mp4_mid_file_is_reported_and_the_other_stream_keeps_running(tmp_path, bright_onnx):
    from fakewatch.runtime.backends import load_runner

    good = write_video(tmp_path / "good.mp4", frames=40)
    bad = write_video(tmp_path / "bad.mp4", frames=40)
    data = bytearray(bad.read_bytes())
    mid = len(data) // 2
    data[mid:mid + len(data) // 4] = bytes(len(data) // 4)       # zero a quarter of the file after the header
    bad.write_bytes(bytes(data))
    s = Pipeline([open_source(str(good), pace=False), open_source(str(bad), pace=False)],
                 load_runner(bright_onnx), WatchConfig(status_interval_s=0)).run()
    assert s.stop_reason == "all sources ended"
    assert s.streams[str(good)]["frames"] == 40                     # untouched by its neighbour
    st = s.streams[str(bad)]
    assert st["source_state"] in ("eof", "failed") and st["frames"] < 40
    ends = [e for e in s.events if e["type"] == "source" and e["stream"] == str(bad) and e["state"] in ("eof", "failed")]
    assert len(ends) == 1 and "bad.mp4" in ends[0]["message"]


def test_model_errors_are_one_line_naming_the_file_and_the_fix(tmp_path, bright_onnx, capsys):
    import onnx

    video = write_video(tmp_path / "v.mp4", frames=5)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(bright_onnx.read_bytes()[:200])
    plain = tmp_path / "plain.onnx"                                 # no contract: no metadata, no sidecar
    m = onnx.load(str(bright_onnx))
    del m.metadata_props[:]
    onnx.save(m, str(plain))
    wrong = tmp_path / "wrong.onnx"                                 # contract says 48x48, the graph takes 32x32
    shutil.copy(bright_onnx, wrong)
    write_sidecar(wrong, load_spec(bright_onnx).replace(input_size=(48, 48)))
    cases = [(truncated, "not a readable ONNX file"), (plain, "no 'fakewatch.spec' entry"),
             (wrong, "[N, 3, 48, 48]")]
    for model, needle in cases:
        rc = main(["watch", str(video), "--model", str(model), "--no-live", "--duration", "5"])
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert rc == 1 and len(lines) == 1 and needle in lines[0] and model.name in lines[0], err
        assert "Traceback" not in err


def test_malloc_arena_cap_respects_the_users_setting(monkeypatch):
    import sys

    from fakewatch.runtime.malloc_tuning import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False                      # the user's choice wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas(0) is False
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert limit_malloc_arenas(2) is True


@pytest.mark.parametrize("flags,needle", [
    (["--reader-max-height", "50"], "--reader-max-height) must be an integer >= 120 px, got 50"),
    (["--detect-every", "3", "--max-detect-every", "2"], "detect_every (3) <= max_detect_every (2)"),
    (["--decode-threads", "-1"], "--decode-threads) must be >= 0"),
])
def test_reader_and_cadence_flags_are_checked_before_anything_runs(tmp_path, bright_onnx, capsys, flags, needle):
    video = write_video(tmp_path / "v.mp4", frames=5)
    rc = main(["watch", str(video), "--model", str(bright_onnx), "--no-live", "--duration", "5", *flags])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1 and needle in lines[0], err
