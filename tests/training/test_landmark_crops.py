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


def test_sbi_plus_swap_adds_cross_person_fakes_and_h264_augment(tmp_path, tiny_spec):
    import shutil

    import pytest

    from fakewatch.training.augment import AugmentConfig, augment

    rng = np.random.default_rng(0)
    for k in range(3):
        d = tmp_path / "data" / "real" / f"p{k}"
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "a.png"), np.full((80, 80, 3), 60 * (k + 1), np.uint8))
    records, _ = build_crops(discover(tmp_path / "data", require_fake=False), tiny_spec, tmp_path / "c", 4,
                             progress=False)
    ds = CropDataset(records, tiny_spec, synth="sbi+swap", train=False, seed=0)
    hows = [how for _r, how in ds.items]
    assert hows.count("") == 3 and hows.count("sbi") == 3 and hows.count("swap") == 3
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    i = hows.index("swap")
    own = ds._crop(ds.items[i][0])
    swapped = ds.image(i)
    # flat grey faces of different brightness: the swap brings another person's level into the face box
    x0, y0, x1, y1 = ds.items[i][0].face_box
    centre = swapped[(y0 + y1) // 2, (x0 + x1) // 2].astype(int)
    assert abs(int(centre[0]) - int(own[(y0 + y1) // 2, (x0 + x1) // 2, 0])) > 20
    with pytest.raises(ValueError, match="at least 2 groups"):
        CropDataset(records[:1], tiny_spec, synth="sbi+swap", train=True)
    if shutil.which("ffmpeg"):
        img = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), np.uint8), (0, 0), 3)
        cfg = AugmentConfig(p_flip=0, p_colour=0, p_blur=0, p_noise=0, p_resize=0, p_jpeg=0, p_h264=1.0,
                            h264_crf=(45, 45))
        out = augment(img, np.random.default_rng(0), cfg)
        assert out.shape == img.shape and 0 < np.abs(out.astype(int) - img).mean() < 40
