"""Credentials in source URLs never reach ids, events, errors, stats keys, repr/str, logs or FFmpeg's stderr."""
from __future__ import annotations

import logging
import time

import pytest

from fakewatch.streams import SourceError, SourceGroup, open_source, redact
from fakewatch.streams.backoff import Backoff
from fakewatch.streams.source import SourceInfo

SECRET_USER, SECRET_PW = "opsadmin", "S3cr3t-pw"


@pytest.mark.parametrize("uri, expected", [
    ("rtsp://admin:pw@cam:554/s", "rtsp://***@cam:554/s"),
    ("rtsps://admin:p@ss@cam/s", "rtsps://***@cam/s"),                  # unencoded '@' in the password
    ("rtsp://admin@cam/s", "rtsp://***@cam/s"),                         # user only
    ("http://h/video.mjpg?user=bob&password=hunter2&res=hd", "http://h/video.mjpg?user=bob&password=***&res=hd"),
    ("https://h/live.m3u8?token=abc.def&x=1", "https://h/live.m3u8?token=***&x=1"),
    ("http://h/a?api_key=K1;pwd=K2", "http://h/a?api_key=***;pwd=***"),
    ("rtsp://cam:554/s", "rtsp://cam:554/s"),
    ("/videos/clip.mp4", "/videos/clip.mp4"),
    ("0", "0"),
    ("failed: rtsp://u:p@a/x and http://v:q@b/y", "failed: rtsp://***@a/x and http://***@b/y"),
])
def test_redact(uri, expected):
    assert redact(uri) == expected
    assert redact(redact(uri)) == expected            # idempotent


def test_source_error_and_source_repr_are_redacted():
    e = SourceError(f"cannot open rtsp://{SECRET_USER}:{SECRET_PW}@cam/x")
    assert SECRET_PW not in str(e) and SECRET_USER not in repr(e)
    src = open_source(f"rtsp://{SECRET_USER}:{SECRET_PW}@127.0.0.1:9/x?token=tok123")
    for text in (src.id, src.uri, repr(src), str(src), repr(src.info), str(SourceInfo(**vars(src.info)))):
        assert SECRET_PW not in text and SECRET_USER not in text and "tok123" not in text, text
    assert src.id == "rtsp://***@127.0.0.1:9/x?token=***"
    # an explicit id is redacted too
    assert SECRET_PW not in open_source(src._uri, source_id=f"x://{SECRET_USER}:{SECRET_PW}@h").id


def test_bad_option_and_scheme_errors_are_redacted():
    with pytest.raises(ValueError) as ei:
        open_source(f"rtsp://{SECRET_USER}:{SECRET_PW}@cam/x", bogus=1)
    assert "bogus" in str(ei.value) and SECRET_PW not in str(ei.value)
    with pytest.raises(SourceError) as ei:
        open_source(f"gopher://{SECRET_USER}:{SECRET_PW}@cam/x")
    assert "unsupported scheme 'gopher'" in str(ei.value) and SECRET_PW not in str(ei.value)


def _all_text(group, events, caplog, capfd) -> str:
    out, err = capfd.readouterr()
    parts = [out, err, caplog.text, repr(group), str(group)]
    parts += [f"{e!r} {e}" for e in events]
    for sid, st in group.stats().items():
        parts += [sid, repr(st)]
    parts += [repr(i) for i in group.info().values()]
    return "\n".join(parts)


def test_refused_connection_redacted_on_every_path(caplog, capfd):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"rtsp://{SECRET_USER}:{SECRET_PW}@127.0.0.1:{port}/cam?password={SECRET_PW}x"
    src = open_source(uri, open_timeout_s=1)
    with pytest.raises(SourceError) as ei:          # direct open: the error itself
        src.open()
    assert "connection refused" in str(ei.value) and f"127.0.0.1:{port}" in str(ei.value)
    events = []
    caplog.set_level(logging.DEBUG, logger="streams")
    group = SourceGroup([src], on_event=events.append, backoff=Backoff(0.05, 0.1, max_retries=1)).start()
    deadline = time.monotonic() + 5
    while not group.all_finished and time.monotonic() < deadline:
        group.wait_frames(0.1)
    group.stop()
    assert [e.state for e in events] == ["connecting", "reconnecting", "failed"]
    text = str(ei.value) + _all_text(group, events, caplog, capfd)
    assert "connection refused" in text and "***" in text
    assert SECRET_PW not in text and SECRET_USER not in text


@pytest.mark.rtsp
def test_real_authenticated_rtsp_redacted_everywhere(rtsp_server_factory, caplog, capfd):
    srv = rtsp_server_factory(fps=25, user=SECRET_USER, password=SECRET_PW)
    caplog.set_level(logging.DEBUG, logger="streams")
    good = open_source(srv.url(SECRET_USER, SECRET_PW), read_timeout_s=3)
    wrong = open_source(srv.url(SECRET_USER, SECRET_PW + "-wrong"), open_timeout_s=3)
    anon = open_source(srv.url(), open_timeout_s=3, source_id="anonymous")     # proves auth is enforced
    events = []
    group = SourceGroup([good, wrong, anon], on_event=events.append, backoff=Backoff(0.1, 0.2, max_retries=1))
    group.start()
    frames, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline and (len(frames) < 25 or any(
            group.stats()[i].state != "failed" for i in (wrong.id, "anonymous"))):
        frames += group.wait_frames(0.2)
    group.stop()
    assert len(frames) >= 25 and all(f.source_id == good.id for f in frames)   # credentials worked
    st = group.stats()
    assert st[good.id].state == "stopped" and st[wrong.id].state == "failed" and st["anonymous"].state == "failed"
    assert "rejected the user name or password" in st[wrong.id].last_error       # 401 -> clear error
    assert "requires credentials" in st["anonymous"].last_error
    text = _all_text(group, events, caplog, capfd) + "".join(f.source_id for f in frames)
    assert SECRET_PW not in text and SECRET_USER not in text


@pytest.mark.rtsp
@pytest.mark.parametrize("digest", [False, True], ids=["basic", "digest"])
def test_rtsp_auth_and_path_errors_are_specific(rtsp_server_factory, capfd, digest):
    srv = rtsp_server_factory(fps=25, user=SECRET_USER, password=SECRET_PW, digest=digest)
    cases = [
        (srv.url(), "the server requires credentials (RTSP 401)"),
        (srv.url(SECRET_USER, "not-" + SECRET_PW), "rejected the user name or password"),
        (srv.url(SECRET_USER, SECRET_PW).replace("/test", "/nope"), "stream path '/nope' not found"),
    ]
    for url, expected in cases:
        with pytest.raises(SourceError) as ei:
            open_source(url, open_timeout_s=3).open()
        msg = str(ei.value)
        assert expected in msg and "tried RTSP DESCRIBE" in msg, msg
        assert SECRET_PW not in msg and SECRET_USER not in msg
    src = open_source(srv.url(SECRET_USER, SECRET_PW), open_timeout_s=5, read_timeout_s=3)
    src.open()
    try:
        assert src.read().image.shape == (240, 320, 3)       # the right credentials work (Basic and Digest)
    finally:
        src.close()
    out, err = capfd.readouterr()
    assert SECRET_PW not in out + err and SECRET_USER not in out + err
