"""--sbi-mask landmarks plumbing: landmarks cached per crop, used by the dataset's self-blends (fake landmarker)."""
from __future__ import annotations

import cv2
import numpy as np

from fakewatch.core.landmarks import FACE_OVAL
from fakewatch.training.data import build_crops, discover
from fakewatch.training.dataset import CropDataset


class RingLandmarker:
    """Stands in for FaceMesh: the face oval on a circle inside the face box; no face in odd calls."""

    def __init__(self):
        self.calls = 0

    def infer(self, image, box):
        self.calls += 1
        x0, y0, x1, y1 = box
        pts = np.tile(np.float32([[(x0 + x1) / 2, (y0 + y1) / 2]]), (468, 1))
        t = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
        r = 0.4 * min(x1 - x0, y1 - y0)
        pts[list(FACE_OVAL)] = np.stack([pts[0, 0] + r * np.cos(t), pts[0, 1] + r * np.sin(t)], 1)
        return pts, (1.0 if self.calls % 2 else 0.0)


def test_landmarks_are_cached_per_crop_and_drive_the_self_blend(tmp_path, tiny_spec):
    rng = np.random.default_rng(0)
    for k in range(4):
        d = tmp_path / "data" / "real" / f"p{k}"
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "a.png"), cv2.GaussianBlur(rng.integers(0, 255, (80, 80, 3), np.uint8), (0, 0), 2))
    items = discover(tmp_path / "data", require_fake=False)
    lm = RingLandmarker()
    records, summary = build_crops(items, tiny_spec, tmp_path / "cache", 4, progress=False, landmarker=lm)
    assert summary["landmark_crops"] == 2 and lm.calls == 4          # no-face answers keep no landmarks
    again, _ = build_crops(items, tiny_spec, tmp_path / "cache", 4, progress=False, landmarker=lm)
    assert lm.calls == 4 and [r.landmarks for r in again] == [r.landmarks for r in records]   # cached
    with_lm = next(r for r in records if r.landmarks)
    assert np.load(with_lm.landmarks).shape == (468, 2)
    ds = CropDataset([with_lm], tiny_spec, synth="sbi", train=False, seed=0)
    plain = CropDataset([with_lm.__class__(**{**with_lm.__dict__, "landmarks": None})], tiny_spec, synth="sbi",
                        train=False, seed=0)
    assert ds.labels.tolist() == [0, 1]
    assert not np.array_equal(ds.image(1), plain.image(1))           # a different (landmark-hull) mask was used
