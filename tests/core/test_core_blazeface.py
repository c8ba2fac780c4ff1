"""BlazeFace NumPy pre/post-processing: MediaPipe anchors, decoding, weighted NMS, letterbox round trip."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.core.blazeface import (VALUES, DecodeConfig, Letterbox, SsdAnchors, decode, detections, letterbox,
                                      nms, to_frame)

SHORT = SsdAnchors(128, 4, (8, 16, 16, 16))
FULL = SsdAnchors(192, 1, (4,), interpolated_scale_aspect_ratio=0.0)


def test_anchor_grids_match_mediapipe_layout():
    a = SHORT.generate()
    assert a.shape == (896, 2)                       # 16x16x2 + 8x8x6
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(a[2], [1.5 / 16, 0.5 / 16])   # x varies fastest, 2 anchors per cell
    assert np.allclose(a[512:518], [0.5 / 8, 0.5 / 8])   # stride 16: 3 layers x 2 = 6 per cell
    assert np.allclose(a[-1], [7.5 / 8, 7.5 / 8])
    f = FULL.generate()
    assert f.shape == (2304, 2) and np.allclose(f[1], [1.5 / 48, 0.5 / 48])


def test_anchor_options_are_validated():
    with pytest.raises(ValueError, match="strides"):
        SsdAnchors(128, 2, (8,))
    with pytest.raises(ValueError, match="fixed_anchor_size"):
        SsdAnchors(128, 1, (8,), fixed_anchor_size=False)
    with pytest.raises(ValueError, match="incomplete"):
        DecodeConfig.from_section({"input_size": [128, 128]})
    with pytest.raises(ValueError, match="NMS kind"):
        DecodeConfig(128, SHORT, 128.0, nms_kind="soft")


def _raw(anchors, hits):
    """Raw output with logit -10 everywhere except ``hits``: {anchor index: (dx, dy, w, h, logit)}."""
    raw = np.zeros((len(anchors), VALUES), np.float32)
    raw[:, -1] = -10.0
    for i, (dx, dy, w, h, logit) in hits.items():
        raw[i, :4] = (dx, dy, w, h)
        raw[i, 4:16] = np.tile([dx, dy], 6)
        raw[i, -1] = logit
    return raw


def test_decode_places_boxes_at_anchor_plus_offset_in_input_pixels():
    cfg = DecodeConfig(128, SHORT, 128.0)
    anchors = SHORT.generate()
    boxes, scores, kps = decode(_raw(anchors, {600: (4.0, -2.0, 30.0, 20.0, 3.0)}).ravel(), anchors, cfg)
    cx, cy = anchors[600] * 128 + (4.0, -2.0)
    assert boxes.shape == (1, 4) and np.allclose(boxes[0], [cx - 15, cy - 10, cx + 15, cy + 10])
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert np.allclose(kps[0], [cx, cy])
    below = _raw(anchors, {600: (0, 0, 30, 30, -0.1)})    # sigmoid(-0.1) < 0.5
    assert decode(below, anchors, cfg)[0].shape == (0, 4)


def test_weighted_nms_merges_overlaps_plain_keeps_best():
    b = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    s = np.array([0.6, 0.9, 0.7], np.float32)
    wb, ws, _ = nms(b, s, 0.3, weighted=True)
    assert ws.tolist() == pytest.approx([0.9, 0.7])
    assert wb[0, 0] == pytest.approx((0 * 0.6 + 1 * 0.9) / 1.5) and np.allclose(wb[1], b[2])
    pb, ps, _ = nms(b, s, 0.3, weighted=False)
    assert np.allclose(pb, b[[1, 2]]) and ps.tolist() == pytest.approx([0.9, 0.7])
    eb, es, ek = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3)
    assert eb.shape == (0, 4) and es.shape == (0,)


def test_letterbox_pads_evenly_converts_to_rgb_and_maps_back():
    img = np.zeros((100, 200, 3), np.uint8)
    img[..., 0] = 255                                   # pure blue in BGR
    x, lb = letterbox(img, 128)
    assert x.shape == (3, 128, 128) and lb == Letterbox(0.64, 0.0, 32.0, 200, 100)
    assert np.allclose(x[2, 32:96], 1.0) and np.allclose(x[0, 32:96], -1.0)   # RGB order, [-1, 1]
    assert np.all(x[:, :32] == 0) and np.all(x[:, 96:] == 0)                 # grey padding rows
    out = np.full((2, 3, 128, 128), 7, np.float32)
    letterbox(img, 128, out=out[1])
    assert np.array_equal(out[1], x) and np.all(out[0] == 7)
    # a box in input pixels maps back through scale and padding, clipped to the frame
    faces = to_frame(np.array([[64, 48, 96, 80], [-10, 20, 20, 200]], np.float32), np.array([0.9, 0.8]), lb)
    by_score = {round(f[4], 2): f for f in faces}
    assert by_score[0.9] == pytest.approx((100.0, 25.0, 50.0, 50.0, 0.9))
    assert by_score[0.8][:2] == (0.0, 0.0) and by_score[0.8][1] + by_score[0.8][3] == 100.0


def test_detections_end_to_end_in_frame_pixels():
    cfg = DecodeConfig(128, SHORT, 128.0)
    anchors = SHORT.generate()
    i = int(np.argmin(np.abs(anchors - [0.5, 0.5]).sum(1)))
    raw = _raw(anchors, {i: (0, 0, 32, 32, 4.0), i + 1: (1, 0, 32, 32, 2.0)})
    _, lb = letterbox(np.zeros((720, 1280, 3), np.uint8), 128)
    faces = detections(raw, anchors, cfg, lb)
    assert len(faces) == 1                              # the two overlapping anchors merged
    x, y, w, h, score = faces[0]
    s1, s2 = 1 / (1 + np.exp(-4.0)), 1 / (1 + np.exp(-2.0))
    cx_input = anchors[i, 0] * 128 + (0 * s1 + 1 * s2) / (s1 + s2)        # score-weighted mean of both centres
    assert (w, h, score) == pytest.approx((320.0, 320.0, s1), abs=1e-3)    # 32 input px at scale 0.1
    assert x + w / 2 == pytest.approx(cx_input / 0.1, abs=1e-2)
    assert y + h / 2 == pytest.approx((anchors[i, 1] * 128 - 28) / 0.1, abs=1e-2)   # 28 px padding on top
