"""A small camera's own look, given to a real crop *before* its fake is made (``fakewatch train --camera-look P``).

Why (``training/results/demo_model/swap_diagnosis``): the demo man is a 63-pixel face from a 176x144 H.264 video.
His real frames score FAKE, and any mild smoothing of them (blur, down-up-scaling, JPEG q30, H.264 CRF 32) drops his
P(fake) by 0.23-0.64 while photo faces move by less than 0.08: the models read the fine texture of a low-resolution
camera frame as manipulation. The training reals are photos and two high-resolution videos, shrunk with an
anti-aliasing filter (``--work-scale``), and the shared augmentation degrades real and fake *after* the blend. Real
webcam deepfakes start from a frame that already carries the camera's edge enhancement, sensor noise and
compression. Applying that look to the real crop at the working scale, before the self-blend or swap is made from
it, puts the texture on both halves of the pair (the fake inherits it), so it stops being a cue, while the blend's
own traces are made afterwards and stay intact.

One draw = in-camera sharpening (unsharp mask), sensor noise, then JPEG or H.264 (ffmpeg) at a camera's quality.
All randomness from the caller's generator (reproducible draws).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fakewatch.training.augment import h264, jpeg


@dataclass(frozen=True)
class CameraLook:
    p: float = 0.5                                  # share of pairs whose real crop gets a camera look
    sharpen: tuple[float, float] = (0.0, 1.0)      # unsharp-mask amount (webcams enhance edges in-camera)
    noise_sigma: tuple[float, float] = (1.0, 5.0)  # sensor noise, grey levels
    p_h264: float = 0.5                             # else JPEG; H.264 is one ffmpeg call (slower)
    crf: tuple[int, int] = (20, 36)
    jpeg_quality: tuple[int, int] = (35, 85)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0 or not 0.0 <= self.p_h264 <= 1.0:
            raise ValueError(f"camera look: p and p_h264 must be in [0, 1], got {self.p}, {self.p_h264}")
        for name in ("sharpen", "noise_sigma", "crf", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"camera look: {name} must be 0 <= lo <= hi, got {(lo, hi)}")
        if self.crf[1] > 51 or self.jpeg_quality[1] > 100:
            raise ValueError(f"camera look: CRF <= 51 and JPEG quality <= 100, got {self.crf}, {self.jpeg_quality}")


def camera_look(image: np.ndarray, rng: np.random.Generator, cfg: CameraLook = CameraLook()) -> np.ndarray:
    """``image`` (uint8 BGR) as a small camera would have delivered it; same shape back."""
    out = np.ascontiguousarray(image)
    amount = float(rng.uniform(*cfg.sharpen))
    if amount > 0:
        soft = cv2.GaussianBlur(out, (0, 0), sigmaX=float(rng.uniform(0.6, 1.2)))
        out = cv2.addWeighted(out, 1.0 + amount, soft, -amount, 0)
    sigma = float(rng.uniform(*cfg.noise_sigma))
    if sigma > 0:
        out = np.clip(out.astype(np.float32) + rng.normal(0.0, sigma, out.shape), 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_h264:
        return h264(out, int(rng.integers(cfg.crf[0], cfg.crf[1] + 1)))
    return jpeg(out, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
