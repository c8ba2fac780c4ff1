"""Augmentations that matter for deepfake detection (numpy + OpenCV, uint8 BGR in and out).

Deployed streams are recompressed, rescaled, blurred and noisy; a detector that only saw pristine crops keys on
compression-fragile traces. Each op fires with its own probability; all randomness comes from the caller's
``np.random.Generator`` (reproducible, resumable epochs).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


@dataclass(frozen=True)
class AugmentConfig:
    p_flip: float = 0.5
    p_colour: float = 0.5
    p_blur: float = 0.15
    p_noise: float = 0.15
    p_resize: float = 0.3
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 100)
    p_h264: float = 0.0               # H.264 encode/decode through ffmpeg (a subprocess per crop: off by default)
    h264_crf: tuple[int, int] = (18, 40)
    resize_scale: tuple[float, float] = (0.5, 1.0)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return image
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def h264(image: np.ndarray, crf: int) -> np.ndarray:
    """``image`` through an H.264 encode/decode (libx264, yuv420p, constant quality ``crf``), same size back."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        raise RuntimeError("H.264 re-encoding needs the ffmpeg binary (apt-get install ffmpeg)")
    h, w = image.shape[:2]
    he, we = h - h % 2, w - w % 2          # yuv420p needs even sizes
    src = np.ascontiguousarray(image[:he, :we])
    enc = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{we}x{he}", "-i", "pipe:0",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", str(int(crf)), "-pix_fmt", "yuv420p", "-f", "h264",
         "pipe:1"], input=src.tobytes(), capture_output=True, check=True).stdout
    dec = subprocess.run(["ffmpeg", "-v", "error", "-f", "h264", "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt",
                          "bgr24", "pipe:1"], input=enc, capture_output=True, check=True).stdout
    out = np.frombuffer(dec, np.uint8)[: he * we * 3].reshape(he, we, 3)
    if (he, we) != (h, w):
        out = cv2.copyMakeBorder(out, 0, h - he, 0, w - we, cv2.BORDER_REPLICATE)
    return out


def augment(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One random augmentation of a uint8 BGR crop (same shape out)."""
    out = image
    h, w = out.shape[:2]
    if rng.random() < cfg.p_flip:
        out = out[:, ::-1]
    if rng.random() < cfg.p_colour:
        f = out.astype(np.float32)
        f = (f - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20)   # contrast, brightness
        grey = f.mean(axis=2, keepdims=True)
        f = grey + (f - grey) * rng.uniform(0.7, 1.3)                              # saturation
        out = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_resize:   # down- and up-scaling with random interpolation (resampling traces)
        s = rng.uniform(*cfg.resize_scale)
        small = cv2.resize(np.ascontiguousarray(out), (max(1, int(w * s)), max(1, int(h * s))),
                           interpolation=int(rng.choice(INTERPOLATIONS)))
        out = cv2.resize(small, (w, h), interpolation=int(rng.choice(INTERPOLATIONS)))
    if rng.random() < cfg.p_blur:
        out = cv2.GaussianBlur(np.ascontiguousarray(out), (0, 0), sigmaX=float(rng.uniform(0.3, 1.2)))
    if rng.random() < cfg.p_noise:
        noise = rng.normal(0.0, rng.uniform(2.0, 8.0), out.shape).astype(np.float32)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        out = jpeg(np.ascontiguousarray(out), int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    if cfg.p_h264 > 0 and rng.random() < cfg.p_h264:
        out = h264(np.ascontiguousarray(out), int(rng.integers(cfg.h264_crf[0], cfg.h264_crf[1] + 1)))
    return np.ascontiguousarray(out)
