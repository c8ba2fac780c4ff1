"""Self-blended images (SBI): pseudo-fakes made from one real face (Shiohara & Yamasaki, CVPR 2022).

A copy of the image (the "source") is colour- and frequency-jittered and slightly shifted/scaled, then blended back
onto the untouched image (the "target") through a soft, randomly deformed face mask. The result carries the generic
traces of face swapping — a blending boundary, colour and sharpness mismatch, a small misalignment — without any
identity change, so a detector trained on it learns the artefacts rather than one generator's fingerprint.

Masks: with ``landmarks`` (468 FaceMesh points, ``fakewatch.core.landmarks``) the mask starts, as in the paper, from
the convex hull of a random landmark subset (face oval, inner face, lower face); without them (the runtime's Haar
detector gives only a box) from an ellipse or a convex hull of random points inside the face box. Both are then
elastically deformed, eroded/dilated and blurred.

numpy + OpenCV only: the demo source (``streams/demo.py``) imports this module on machines without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]   # (x0, y0, x1, y1), x1/y1 exclusive — same as fakewatch.core.roi.Box

# The paper draws the blend ratio from this set: full replacement is the most common, partial ones teach the
# detector faint blends.
DEFAULT_RATIOS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
# The mask never reaches beyond the face box grown by this fraction of its size on each side (smaller than the
# runtime's default ROI margin of 0.3, so a blended face always lies inside the crop the model sees).
REGION_GROW = 0.25


@dataclass(frozen=True)
class SbiConfig:
    """Strength of each jitter; the defaults follow the paper's ranges, adapted to low-resolution faces."""
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    hue_shift: float = 8.0            # OpenCV hue units (0..180)
    sat_shift: float = 25.0
    val_shift: float = 25.0
    rgb_shift: float = 20.0
    contrast: tuple[float, float] = (0.8, 1.2)
    brightness: float = 20.0
    shift_frac: float = 0.03          # affine translation, fraction of the box size
    scale: tuple[float, float] = (0.95, 1.05)
    elastic_frac: float = 0.06        # mask deformation amplitude, fraction of the box size


def mask_region(box: Box, shape: Sequence[int]) -> Box:
    """The face box grown by ``REGION_GROW`` and clipped to the image: the mask is zero outside it."""
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = box
    gx, gy = (x1 - x0) * REGION_GROW, (y1 - y0) * REGION_GROW
    return (max(0, int(np.floor(x0 - gx))), max(0, int(np.floor(y0 - gy))),
            min(w, int(np.ceil(x1 + gx))), min(h, int(np.ceil(y1 + gy))))


def _odd(n: float) -> int:
    k = max(1, int(round(n)))
    return k if k % 2 == 1 else k + 1


# ---------------------------------------------------------------------------------------------------- mask
def landmark_hull(shape: Sequence[int], landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The paper's starting mask: convex hull of a random FaceMesh subset (uint8 HxW, 0/255)."""
    from fakewatch.core.landmarks import HULLS

    names = ("face_oval", "face_oval", "inner_face", "lower_face")   # full-face hull most often
    idx = HULLS[names[int(rng.integers(len(names)))]]
    pts = np.asarray(landmarks, np.float32)[list(idx)].round().astype(np.int32)
    hard = np.zeros((int(shape[0]), int(shape[1])), np.uint8)
    cv2.fillConvexPoly(hard, cv2.convexHull(pts), 255)
    return hard


def make_mask(shape: Sequence[int], box: Box, rng: np.random.Generator, cfg: SbiConfig = SbiConfig(),
              landmarks: np.ndarray | None = None) -> np.ndarray:
    """A soft face mask in [0, 1] (float32 HxW): landmark hull, ellipse or random hull; deformed, blurred edges."""
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = box
    bw, bh = max(2.0, float(x1 - x0)), max(2.0, float(y1 - y0))
    cx = (x0 + x1) / 2.0 + rng.uniform(-0.05, 0.05) * bw
    cy = (y0 + y1) / 2.0 + rng.uniform(-0.02, 0.08) * bh      # faces sit a little low in Haar boxes
    hard = np.zeros((h, w), np.uint8)
    if landmarks is not None:
        hard = landmark_hull((h, w), landmarks, rng)
    elif rng.random() < 0.5:
        axes = (int(round(bw * rng.uniform(0.32, 0.46))), int(round(bh * rng.uniform(0.40, 0.52))))
        angle = float(rng.uniform(-12, 12))
        cv2.ellipse(hard, (int(round(cx)), int(round(cy))), axes, angle, 0, 360, 255, -1)
    else:
        # landmark-free stand-in for the paper's landmark hull: random points on a jittered ellipse
        n = 12
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        rx = bw * rng.uniform(0.32, 0.46) * rng.uniform(0.85, 1.0, n)
        ry = bh * rng.uniform(0.40, 0.52) * rng.uniform(0.85, 1.0, n)
        pts = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1).round().astype(np.int32)
        cv2.fillConvexPoly(hard, cv2.convexHull(pts), 255)
    mask = hard.astype(np.float32) / 255.0
    mask = _elastic(mask, rng, amplitude=cfg.elastic_frac * min(bw, bh))
    # random erode/dilate, then soft edges (the paper blurs the mask twice with random kernels)
    k = _odd(min(bw, bh) * rng.uniform(0.02, 0.08))
    if rng.random() < 0.5:
        mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    else:
        mask = cv2.dilate(mask, np.ones((k, k), np.uint8))
    sigma = min(bw, bh) * rng.uniform(0.03, 0.08)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma)
    rx0, ry0, rx1, ry1 = mask_region(box, (h, w))
    clipped = np.zeros_like(mask)
    clipped[ry0:ry1, rx0:rx1] = mask[ry0:ry1, rx0:rx1]
    mask = clipped / max(float(clipped.max()), 1e-6)   # interior reaches 1 even after blur
    mask[mask < 1e-3] = 0.0                            # no invisible-but-nonzero tails
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def _elastic(mask: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Smooth random displacement field (coarse noise, bicubic upsampled) applied with cv2.remap."""
    h, w = mask.shape
    grid = 5
    dx = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, xs + amplitude * dx, ys + amplitude * dy, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# ---------------------------------------------------------------------------------------------------- source
def jitter_colour(image: np.ndarray, rng: np.random.Generator, cfg: SbiConfig = SbiConfig()) -> np.ndarray:
    """HSV shift, per-channel RGB shift, brightness/contrast — one or more, at random."""
    out = image.astype(np.float32)
    if rng.random() < 0.7:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue_shift, cfg.hue_shift)) % 180.0
        hsv[..., 1] += rng.uniform(-cfg.sat_shift, cfg.sat_shift)
        hsv[..., 2] += rng.uniform(-cfg.val_shift, cfg.val_shift)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    if rng.random() < 0.5:
        out += rng.uniform(-cfg.rgb_shift, cfg.rgb_shift, 3).astype(np.float32)
    if rng.random() < 0.7:
        c = rng.uniform(*cfg.contrast)
        out = (out - 128.0) * c + 128.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    return np.clip(out, 0, 255).astype(np.uint8)


def jitter_frequency(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of: Gaussian blur, unsharp-mask sharpening, downscale-upscale (resampling trace)."""
    h, w = image.shape[:2]
    kind = rng.integers(0, 3)
    if kind == 0:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=float(rng.uniform(0.5, 1.5)))
    if kind == 1:
        blur = cv2.GaussianBlur(image, (0, 0), sigmaX=float(rng.uniform(0.8, 2.0)))
        amount = float(rng.uniform(0.5, 1.5))
        return cv2.addWeighted(image, 1.0 + amount, blur, -amount, 0)
    f = float(rng.uniform(0.35, 0.75))
    small = cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=int(rng.choice([cv2.INTER_LINEAR, cv2.INTER_CUBIC])))


def shift_scale(image: np.ndarray, box: Box, rng: np.random.Generator, cfg: SbiConfig = SbiConfig()) -> np.ndarray:
    """Small affine translation/scale about the face centre (misalignment between the swapped and host face)."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    s = float(rng.uniform(*cfg.scale))
    m = cv2.getRotationMatrix2D(((x0 + x1) / 2.0, (y0 + y1) / 2.0), 0.0, s)
    m[0, 2] += rng.uniform(-cfg.shift_frac, cfg.shift_frac) * bw
    m[1, 2] += rng.uniform(-cfg.shift_frac, cfg.shift_frac) * bh
    h, w = image.shape[:2]
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def make_source(image: np.ndarray, box: Box, rng: np.random.Generator, cfg: SbiConfig = SbiConfig()) -> np.ndarray:
    """The jittered copy that gets pasted back. At least one of colour / frequency jitter always happens."""
    src = image
    do_colour, do_freq = rng.random() < 0.8, rng.random() < 0.6
    if not (do_colour or do_freq):
        do_colour = True
    if do_colour:
        src = jitter_colour(src, rng, cfg)
    if do_freq:
        src = jitter_frequency(src, rng)
    return shift_scale(src, box, rng, cfg)


# ---------------------------------------------------------------------------------------------------- blend
def blend(source: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * source + (1 - alpha) * target``, rounded to uint8. Where alpha == 0 the target is kept exactly."""
    a = alpha.astype(np.float32)[..., None]
    out = a * source.astype(np.float32) + (1.0 - a) * target.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def self_blend(image_bgr: np.ndarray, box: Box, rng: np.random.Generator, *, ratio: float | None = None,
               cfg: SbiConfig = SbiConfig(), landmarks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One self-blended fake of ``image_bgr`` around face ``box``.

    Returns ``(blended_bgr_uint8, alpha)`` where ``alpha`` (float32 HxW in [0, 1]) is the effective blend weight:
    the soft mask times the blend ratio (drawn from ``cfg.ratios`` unless ``ratio`` is given). The output equals the
    input wherever alpha is 0, and alpha is 0 outside :func:`mask_region`. Same ``rng`` state -> same output.
    ``landmarks`` (Nx2 image pixels, FaceMesh order) switch the mask to the paper's landmark hulls.
    """
    if not (isinstance(image_bgr, np.ndarray) and image_bgr.dtype == np.uint8 and image_bgr.ndim == 3
            and image_bgr.shape[2] == 3):
        raise ValueError(f"self_blend needs an HxWx3 uint8 BGR image, got "
                         f"{getattr(image_bgr, 'dtype', type(image_bgr))} {getattr(image_bgr, 'shape', '')}")
    h, w = image_bgr.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(0, min(x0, w - 1)), max(0, min(y0, h - 1))
    x1, y1 = max(x0 + 2, min(x1, w)), max(y0 + 2, min(y1, h))
    box = (x0, y0, x1, y1)
    if ratio is None:
        ratio = float(rng.choice(np.asarray(cfg.ratios, np.float64)))
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"blend ratio must be in (0, 1], got {ratio}")
    mask = make_mask((h, w), box, rng, cfg, landmarks=landmarks)
    source = make_source(image_bgr, box, rng, cfg)
    alpha = (mask * np.float32(ratio)).astype(np.float32)
    return blend(source, image_bgr, alpha), alpha


def central_box(shape: Sequence[int], frac: float = 0.5) -> Box:
    """Fallback "face" box when no face is detected (synthetic data, full-frame models): the central region."""
    h, w = int(shape[0]), int(shape[1])
    bw, bh = max(2, int(w * frac)), max(2, int(h * frac))
    x0, y0 = (w - bw) // 2, (h - bh) // 2
    return (x0, y0, x0 + bw, y0 + bh)
