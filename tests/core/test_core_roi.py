"""ROI: detector interface, detect-every-k, holding boxes across misses, YuNet errors, Haar on a real photo."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.core.checkpoint import default_spec
from fakewatch.core.roi import HaarFaceDetector, RoiExtractor, RoiTracker, YuNetFaceDetector, make_face_detector


class ScriptedDetector:
    """Returns the scripted faces for each call, counting calls."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def detect(self, image):
        out = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return out


FACE = [(40.0, 30.0, 20.0, 20.0, 0.99)]
IMG = np.zeros((120, 160, 3), np.uint8)


def tracker(script, **kw):
    det = ScriptedDetector(script)
    spec = default_spec("test", roi="face", roi_margin=0.5)
    return RoiTracker(RoiExtractor(spec, det), **kw), det


def test_detect_every_k_reuses_boxes_between_runs():
    tr, det = tracker([FACE], detect_every=3)
    results = [tr.boxes("cam", IMG, i / 10) for i in range(7)]
    assert det.calls == 3                                   # frames 0, 3, 6
    assert [d for _b, d in results] == [True, False, False, True, False, False, True]
    assert all(b == [(30, 20, 70, 60)] for b, _d in results)   # 20 px face, +50 % each side, square


def test_boxes_held_briefly_when_detection_misses_then_no_face():
    tr, det = tracker([FACE, [], [], [], [], [], [], []], detect_every=1, hold_s=0.25)
    got = [tr.boxes("cam", IMG, i / 10)[0] for i in range(6)]
    assert got[0] and got[1] == got[0] and got[2] == got[0]   # held at 0.1 s and 0.2 s
    assert got[3] == [] and got[4] == [] and got[5] == []      # 0.3 s > hold: no face
    assert det.calls == 6


def test_streams_are_independent_and_resolution_change_drops_boxes():
    tr, det = tracker([FACE, [], []], detect_every=5, hold_s=10)
    assert tr.boxes("a", IMG, 0.0)[0]
    assert tr.boxes("b", IMG, 0.0)[0] == []                 # b's own detector run (script: [])
    big = np.zeros((240, 320, 3), np.uint8)
    assert tr.boxes("a", big, 0.1) == ([], True)            # new size: held boxes dropped, re-detected
    assert det.calls == 3


def test_full_frame_roi_never_detects():
    spec = default_spec("test", roi="full")
    tr = RoiTracker(RoiExtractor(spec))
    assert tr.boxes("x", IMG, 0.0) == ([(0, 0, 160, 120)], True)
    assert RoiExtractor(spec).detector is None


def test_yunet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="YuNet face detector .* does not exist"):
        make_face_detector(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a YuNet model"):
        YuNetFaceDetector(bad)
    assert isinstance(make_face_detector(None), HaarFaceDetector)


def test_haar_finds_the_astronaut():
    data = pytest.importorskip("skimage.data")
    rgb = data.astronaut()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    boxes = RoiExtractor(default_spec("test", roi="face", roi_margin=0.3))(bgr)
    assert boxes
    x0, y0, x1, y1 = boxes[0]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512 and abs((x1 - x0) - (y1 - y0)) <= 1
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200    # her face, upper middle of the photo
