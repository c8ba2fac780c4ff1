"""ROI: full-frame boxes, YuNet errors, Haar on a real photo (tracking is tested in tests/runtime/test_tracking.py)."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.core.checkpoint import default_spec
from fakewatch.core.roi import HaarFaceDetector, RoiExtractor, YuNetFaceDetector


IMG = np.zeros((120, 160, 3), np.uint8)


def test_full_frame_roi_never_detects():
    spec = default_spec("test", roi="full")
    assert RoiExtractor(spec)(IMG) == [(0, 0, 160, 120)]
    assert RoiExtractor(spec).detector is None


def test_yunet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="YuNet face detector .* does not exist"):
        YuNetFaceDetector(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a YuNet model"):
        YuNetFaceDetector(bad)
    assert isinstance(RoiExtractor(default_spec("test", roi="face")).detector, HaarFaceDetector)


def test_haar_finds_the_astronaut():
    data = pytest.importorskip("skimage.data")
    rgb = data.astronaut()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    boxes = RoiExtractor(default_spec("test", roi="face", roi_margin=0.3))(bgr)
    assert boxes
    x0, y0, x1, y1 = boxes[0]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512 and abs((x1 - x0) - (y1 - y0)) <= 1
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200    # her face, upper middle of the photo
