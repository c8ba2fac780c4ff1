"""A busy, sharp surrounding for both halves of a pair (``fakewatch train --context-look P``).

Why (``training/results/demo_model/swap_diagnosis``): blurring only the area *outside* the demo man's face box drops
attempt H's P(fake) on his real frames by 0.78 (H1: 0.49), blurring inside it changes nothing for him; his face is
the smoothest of all test people (a 63-pixel video face) in front of the highest-contrast background (a car's
window blinds). A self-blend whose source was blurred is exactly "a face smoother than what surrounds it", so the
models learned the face/context sharpness *contrast* as the manipulation, and a real low-detail face in a busy scene
trips it. Here the surrounding of a pair is sharpened and/or overlaid with hard-edged stripes, identically on the
real and on the fake, strictly outside the pixels the fake changed: real faces now also come with surroundings
much sharper than the face, and only the blend itself tells the halves apart.

All randomness from the caller's generator (reproducible draws).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ContextLook:
    p: float = 0.5                                 # share of pairs whose surroundings get the look
    p_sharpen: float = 0.7
    sharpen: tuple[float, float] = (0.8, 2.5)     # unsharp-mask amount
    p_stripes: float = 0.5
    stripe_amplitude: tuple[float, float] = (15.0, 60.0)   # grey levels, square wave
    stripe_period: tuple[float, float] = (0.04, 0.15)      # fraction of the crop width
    ramp_px: float = 3.0                           # soft edge (pixels) between the untouched core and the look
    guard_px: int = 2                              # also keep this many pixels around the changed area untouched

    def __post_init__(self) -> None:
        for name in ("p", "p_sharpen", "p_stripes"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"context look: {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("sharpen", "stripe_amplitude", "stripe_period"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"context look: {name} must be 0 <= lo <= hi, got {(lo, hi)}")
        if self.ramp_px < 0 or self.guard_px < 0:
            raise ValueError("context look: ramp_px and guard_px must be >= 0")


def context_weight(changed: np.ndarray, cfg: ContextLook = ContextLook()) -> np.ndarray:
    """float32 HxW weight: 0 on the changed pixels and ``guard_px`` around them, ramping to 1 over ``ramp_px``."""
    free = (~changed).astype(np.uint8)
    if not changed.any():
        return np.ones(changed.shape, np.float32)
    dist = cv2.distanceTransform(free, cv2.DIST_L2, 3)   # distance to the nearest changed pixel
    return np.clip((dist - cfg.guard_px) / max(cfg.ramp_px, 1e-6), 0.0, 1.0).astype(np.float32)


def _stripes(shape: tuple[int, ...], rng: np.random.Generator, cfg: ContextLook) -> np.ndarray:
    h, w = shape[:2]
    period = max(2.0, float(rng.uniform(*cfg.stripe_period)) * w)
    angle = float(rng.uniform(0, np.pi))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period + float(rng.uniform(0, 1))
    wave = np.where((phase % 1.0) < 0.5, 1.0, -1.0).astype(np.float32)
    return wave * float(rng.uniform(*cfg.stripe_amplitude))


def context_look(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator,
                 cfg: ContextLook = ContextLook()) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) with the same look applied outside the pixels where they differ; those pixels stay as they were."""
    if real.shape != fake.shape:
        raise ValueError(f"context look: real {real.shape} and fake {fake.shape} must have one shape")
    changed = np.any(real != fake, axis=2)
    weight = context_weight(changed, cfg)[..., None]
    do_sharp = rng.random() < cfg.p_sharpen
    do_stripes = rng.random() < cfg.p_stripes
    if not (do_sharp or do_stripes):
        do_sharp = True
    amount = float(rng.uniform(*cfg.sharpen))
    sigma = float(rng.uniform(0.8, 2.0))
    stripes = _stripes(real.shape, rng, cfg)[..., None] if do_stripes else None
    # the real's blur for both halves: where the look applies they are equal, and the fake's changed pixels must not
    # bleed into its surroundings through the blur (that would make the surroundings differ between the halves)
    soft = cv2.GaussianBlur(real.astype(np.float32), (0, 0), sigmaX=sigma) if do_sharp else None
    out = []
    for img in (real, fake):
        f = img.astype(np.float32)
        look = f
        if soft is not None:
            look = look * (1 + amount) - soft * amount
        if stripes is not None:
            look = look + stripes
        out.append(np.clip(np.rint(f + (look - f) * weight), 0, 255).astype(np.uint8))
    return out[0], out[1]
