"""Self-blended images: mask bounds, blend ratio, output range/dtype, determinism, locality."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.core.sbi import DEFAULT_RATIOS, blend, central_box, make_mask, mask_region, self_blend


def _image(seed: int = 0, h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (h + w))], -1).astype(np.float32)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


BOX = (50, 30, 110, 90)


@pytest.mark.parametrize("seed", range(12))
def test_mask_is_soft_bounded_and_zero_outside_region(seed):
    img = _image()
    out, alpha = self_blend(img, BOX, np.random.default_rng(seed))
    assert alpha.dtype == np.float32 and alpha.shape == img.shape[:2]
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    x0, y0, x1, y1 = mask_region(BOX, img.shape)
    outside = np.ones(alpha.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert not alpha[outside].any()
    # the face centre is covered, soft edges exist (values strictly between 0 and the ratio)
    assert alpha[60, 80] > 0
    peak = alpha.max()
    assert ((alpha > 0.05 * peak) & (alpha < 0.95 * peak)).sum() > 50


@pytest.mark.parametrize("seed", range(12))
def test_output_dtype_range_and_changes_only_inside_mask(seed):
    img = _image(seed)
    out, alpha = self_blend(img, BOX, np.random.default_rng(seed))
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out[alpha == 0], img[alpha == 0])
    diff = np.abs(out.astype(int) - img.astype(int)).max(-1)
    assert diff[alpha >= 0.5 * alpha.max()].mean() > 1.0, "a blend that changes nothing is not a fake"


def test_ratio_scales_the_mask_and_default_ratios_are_the_papers():
    img = _image()
    for ratio in (0.25, 0.5, 1.0):
        _, alpha = self_blend(img, BOX, np.random.default_rng(3), ratio=ratio)
        assert alpha.max() == pytest.approx(ratio, abs=1e-5)
    assert set(DEFAULT_RATIOS) == {0.25, 0.5, 0.75, 1.0}
    peaks = {round(float(self_blend(img, BOX, np.random.default_rng(s))[1].max()), 4) for s in range(40)}
    assert peaks <= {0.25, 0.5, 0.75, 1.0} and len(peaks) >= 3
    with pytest.raises(ValueError):
        self_blend(img, BOX, np.random.default_rng(0), ratio=1.5)


def test_blend_formula():
    src = np.full((4, 4, 3), 200, np.uint8)
    tgt = np.full((4, 4, 3), 100, np.uint8)
    alpha = np.zeros((4, 4), np.float32)
    alpha[1, 1], alpha[2, 2] = 0.25, 1.0
    out = blend(src, tgt, alpha)
    assert out[0, 0, 0] == 100 and out[1, 1, 0] == 125 and out[2, 2, 0] == 200


def test_deterministic_with_a_seed_and_different_across_seeds():
    img = _image()
    a1, m1 = self_blend(img, BOX, np.random.default_rng(42))
    a2, m2 = self_blend(img, BOX, np.random.default_rng(42))
    b, mb = self_blend(img, BOX, np.random.default_rng(43))
    assert np.array_equal(a1, a2) and np.array_equal(m1, m2)
    assert not np.array_equal(a1, b) or not np.array_equal(m1, mb)


def test_box_at_the_border_and_bad_input():
    img = _image()
    out, alpha = self_blend(img, (-20, -10, 40, 50), np.random.default_rng(1))
    assert out.shape == img.shape and alpha[25, 20] > 0
    mask = make_mask(img.shape, central_box(img.shape), np.random.default_rng(0))
    assert mask.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="uint8"):
        self_blend(img.astype(np.float32), BOX, np.random.default_rng(0))
