"""`fakewatch probe`: reports sources, fails with one line on bad input, never prints credentials."""
from __future__ import annotations

import json
import socket

from fakewatch.cli import main


def test_probe_file_json(capsys, video_25fps):
    rc = main(["probe", str(video_25fps), "--seconds", "1.2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    (r,) = out["sources"].values()
    assert (r["kind"], r["width"], r["height"], r["nominal_fps"], r["live"]) == ("file", 160, 120, 25.0, False)
    assert 25 <= r["frames"] <= 32 and r["measured_fps"] > 20          # paced: ~25 fps for 1.2 s
    assert [e["state"] for e in r["events"]][:2] == ["connecting", "live"]


def test_probe_bad_inputs(capsys, tmp_path):
    assert main(["probe", str(tmp_path / "missing.mp4")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fakewatch probe: error: file ") and "no such file" in err and err.count("\n") == 1

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = main(["probe", f"rtsp://admin:topsecret@127.0.0.1:{port}/cam", "--seconds", "0.5", "--open-timeout", "1"])
    out = capsys.readouterr()
    assert rc == 1                                           # no frame from the source
    assert "connection refused" in out.out and "rtsp://***@127.0.0.1" in out.out
    assert "topsecret" not in out.out + out.err and "admin" not in out.out + out.err
