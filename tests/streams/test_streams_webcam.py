"""WebcamSource against a stand-in for cv2.VideoCapture (no camera on CI): the V4L2 calls it makes, what `info`
reports, unplug -> reconnect. Device validation without a device is tested in test_streams_files."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

import fakewatch.streams.capture as capture
from fakewatch.streams import SourceError, SourceGroup, open_source
from fakewatch.streams.backoff import Backoff


class FakeCam:
    """Mimics a V4L2 camera whose driver snaps 1280x720 requests to 1280x720 and anything else to 640x480."""
    instances: list["FakeCam"] = []
    unplugged = False

    def __init__(self, target, api):
        self.target, self.api, self.props, self.n = target, api, {}, 0
        self.opened = not FakeCam.unplugged
        FakeCam.instances.append(self)

    def isOpened(self):  # noqa: N802
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        big = self.props.get(cv2.CAP_PROP_FRAME_WIDTH) == 1280 and self.props.get(cv2.CAP_PROP_FRAME_HEIGHT) == 720
        return {cv2.CAP_PROP_FRAME_WIDTH: 1280 if big else 640, cv2.CAP_PROP_FRAME_HEIGHT: 720 if big else 480,
                cv2.CAP_PROP_FPS: 30.0}.get(prop, 0.0)

    def read(self):
        if FakeCam.unplugged:
            return False, None
        time.sleep(0.01)
        self.n += 1
        h, w = int(self.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(self.get(cv2.CAP_PROP_FRAME_WIDTH))
        return True, np.full((h, w), self.n % 256, np.uint8)           # a grey-only driver

    def release(self):
        self.opened = False


@pytest.fixture
def fake_cam(monkeypatch):
    FakeCam.instances, FakeCam.unplugged = [], False
    monkeypatch.setattr(capture.cv2, "VideoCapture", FakeCam)
    real_exists, real_access = capture.os.path.exists, capture.os.access
    monkeypatch.setattr(capture.os.path, "exists", lambda p: p == "/dev/video7" or real_exists(p))
    monkeypatch.setattr(capture.os, "access", lambda p, m: p == "/dev/video7" or real_access(p, m))
    return FakeCam


@pytest.mark.skipif(not capture.sys.platform.startswith("linux"), reason="V4L2 path")
def test_webcam_requests_mode_and_reports_what_driver_gave(fake_cam):
    src = open_source("7", width=1280, height=720, fps=30, fourcc="MJPG", read_timeout_s=2)
    assert src.kind == "webcam" and src.live and src.id == "webcam:7"
    src.open()
    cam = fake_cam.instances[-1]
    assert (cam.target, cam.api) == (7, cv2.CAP_V4L2)
    assert cam.props[cv2.CAP_PROP_BUFFERSIZE] == 1                       # newest frame, not a driver queue
    assert cam.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
    assert cam.props[cv2.CAP_PROP_READ_TIMEOUT_MSEC] == 2000
    assert (src.info.width, src.info.height, src.info.fps) == (1280, 720, 30.0)
    raw = src.read()
    assert raw.image.shape == (720, 1280, 3) and raw.image.dtype == np.uint8   # grey converted to BGR
    src.close()
    src2 = open_source("/dev/video7", width=1000, height=1000)
    src2.open()
    assert (src2.info.width, src2.info.height) == (640, 480)              # driver picked the closest mode
    src2.close()
    with pytest.raises(SourceError, match="fourcc must be 4 characters"):
        open_source("7", fourcc="MJPEG")


@pytest.mark.skipif(not capture.sys.platform.startswith("linux"), reason="V4L2 path")
def test_webcam_unplug_and_replug_reconnects(fake_cam):
    src = open_source("7")
    events = []
    with SourceGroup([src], on_event=events.append, backoff=Backoff(0.05, 0.1, jitter=0.0)) as group:
        deadline = time.monotonic() + 5
        while "live" not in [e.state for e in events] and time.monotonic() < deadline:
            group.wait_frames(0.1)
        fake_cam.unplugged = True
        time.sleep(0.4)
        assert group.stats()[src.id].state == "reconnecting"
        fake_cam.unplugged = False
        deadline = time.monotonic() + 5
        while [e.state for e in events].count("live") < 2 and time.monotonic() < deadline:
            group.wait_frames(0.1)
        assert group.wait_frames(1.0)
    states = [e.state for e in events]
    assert states[:3] == ["connecting", "live", "reconnecting"] and states.count("live") == 2
    assert any("unplugged?" in e.message for e in events) and any("could not open" in e.message for e in events)
    assert group.stats()[src.id].reconnects == 1
