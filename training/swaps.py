"""Classic face swaps between two different people, for evaluation (and as an extra training fake type).

The source person's face is warped onto the target's face box (scale + translation of the detector boxes: no
landmarks), then pasted through a soft elliptical mask by one of three blends that face-swap tools use:

* ``poisson``: ``cv2.seamlessClone`` (gradient-domain; the seam takes the target's colours),
* ``laplacian``: Laplacian-pyramid blending (multi-band: low frequencies blend wide, details narrow),
* ``colour_transfer``: Reinhard LAB mean/std transfer of the source face onto the target's, then a feathered alpha.

A model trained only on self-blends has never seen any of these, so they measure whether it learned "blended face"
rather than one generator. numpy + OpenCV; all randomness from the caller's generator.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def align_source(source: np.ndarray, src_box: Box, target_shape: tuple[int, ...], dst_box: Box) -> np.ndarray:
    """``source`` warped so that its face box lands on ``dst_box`` of an image shaped ``target_shape``."""
    sx0, sy0, sx1, sy1 = src_box
    dx0, dy0, dx1, dy1 = dst_box
    ax, ay = (dx1 - dx0) / max(1, sx1 - sx0), (dy1 - dy0) / max(1, sy1 - sy0)
    m = np.float32([[ax, 0, dx0 - ax * sx0], [0, ay, dy0 - ay * sy0]])
    h, w = target_shape[:2]
    return cv2.warpAffine(source, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def face_mask(shape: tuple[int, ...], box: Box, rng: np.random.Generator, feather: float = 0.08) -> np.ndarray:
    """Soft elliptical inner-face mask in [0, 1] (float32 HxW): eyes, nose, mouth, cheeks; not hair or ears."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    centre = (int(round((x0 + x1) / 2 + rng.uniform(-0.02, 0.02) * bw)),
              int(round(y0 + bh * rng.uniform(0.52, 0.58))))
    axes = (max(2, int(bw * rng.uniform(0.34, 0.42))), max(2, int(bh * rng.uniform(0.42, 0.50))))
    hard = np.zeros((h, w), np.float32)
    cv2.ellipse(hard, centre, axes, 0.0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(hard, (0, 0), sigmaX=max(0.5, feather * min(bw, bh)))


def _poisson(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    hard = (mask > 0.5).astype(np.uint8) * 255
    ys, xs = np.nonzero(hard)
    if len(xs) == 0:
        return dst.copy()
    # seamlessClone needs the mask's bounding box strictly inside the image
    hard[0, :], hard[-1, :], hard[:, 0], hard[:, -1] = 0, 0, 0, 0
    ys, xs = np.nonzero(hard)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    centre = (int((x0 + x1 + 1) // 2), int((y0 + y1 + 1) // 2))
    return cv2.seamlessClone(src, dst, hard, centre, cv2.NORMAL_CLONE)


def _laplacian(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, levels: int = 4) -> np.ndarray:
    h, w = dst.shape[:2]
    levels = max(1, min(levels, int(np.log2(max(2, min(h, w)))) - 2))
    a, b, m = src.astype(np.float32), dst.astype(np.float32), mask.astype(np.float32)
    ga, gb, gm = [a], [b], [m]
    for _ in range(levels):
        ga.append(cv2.pyrDown(ga[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = ga[-1] * gm[-1][..., None] + gb[-1] * (1 - gm[-1][..., None])
    for i in range(levels - 1, -1, -1):
        size = (ga[i].shape[1], ga[i].shape[0])
        la = ga[i] - cv2.pyrUp(ga[i + 1], dstsize=size)
        lb = gb[i] - cv2.pyrUp(gb[i + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + la * gm[i][..., None] + lb * (1 - gm[i][..., None])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def colour_transfer(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard et al. 2001: match the source face's LAB mean/std to the target face's (inside the mask)."""
    sel = mask > 0.5
    if sel.sum() < 4:
        return src.copy()
    s = cv2.cvtColor(src, cv2.COLOR_BGR2LAB).astype(np.float32)
    d = cv2.cvtColor(dst, cv2.COLOR_BGR2LAB).astype(np.float32)
    ms, ss = s[sel].mean(0), s[sel].std(0) + 1e-3
    md, sd = d[sel].mean(0), d[sel].std(0) + 1e-3
    out = (s - ms) / ss * sd + md
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def _colour_alpha(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    src = colour_transfer(src, dst, mask)
    a = mask[..., None]
    return np.clip(np.rint(src * a + dst * (1 - a)), 0, 255).astype(np.uint8)


BLENDS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "poisson": _poisson,
    "laplacian": _laplacian,
    "colour_transfer": _colour_alpha,
}


def face_swap(source: np.ndarray, src_box: Box, target: np.ndarray, dst_box: Box, rng: np.random.Generator,
              blend: str = "poisson") -> np.ndarray:
    """The target image with the source person's inner face pasted onto ``dst_box`` (uint8 BGR, target's shape)."""
    if blend not in BLENDS:
        raise ValueError(f"unknown swap blend {blend!r}; choose from {sorted(BLENDS)}")
    for name, img in (("source", source), ("target", target)):
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
            raise ValueError(f"face_swap: {name} must be an HxWx3 uint8 BGR image, got "
                             f"{getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}")
    warped = align_source(source, src_box, target.shape, dst_box)
    mask = face_mask(target.shape, dst_box, rng)
    return BLENDS[blend](warped, target, mask)
