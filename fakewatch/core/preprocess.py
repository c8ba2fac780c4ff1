"""CPU reference preprocessing: crop -> bilinear resize -> BGR->RGB (per contract) -> normalize -> CHW -> batch.

This is *the* definition of the model input; the CUDA kernel (runtime/cuda) must compute the same function.
Resize is cv2.INTER_LINEAR on the uint8 crop (half-pixel centres, OpenCV's fixed-point weights).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.core.roi import Box, crop


def preprocess(images: Sequence[np.ndarray], boxes: Sequence[Box], spec: ModelSpec,
               out: np.ndarray | None = None) -> np.ndarray:
    """One model input per (image, box) pair: float32 array (N, 3, H, W)."""
    if len(images) != len(boxes):
        raise ValueError(f"preprocess: {len(images)} images but {len(boxes)} boxes")
    h, w = spec.input_size
    n = len(images)
    if out is None:
        out = np.empty((n, 3, h, w), np.float32)
    elif out.shape != (n, 3, h, w) or out.dtype != np.float32:
        raise ValueError(f"preprocess: out must be float32 {(n, 3, h, w)}, got {out.dtype} {out.shape}")
    if n == 0:
        return out
    resized = np.empty((n, h, w, 3), np.uint8)
    for i, (image, box) in enumerate(zip(images, boxes)):
        # the only per-image step: crops differ in size. Everything after is one vectorised pass over the batch.
        cv2.resize(crop(image, box), (w, h), dst=resized[i], interpolation=cv2.INTER_LINEAR)
    # HWC->CHW (and BGR->RGB) on uint8 first: moving 1-byte pixels is 4x cheaper than moving floats, and the
    # float pass below then reads and writes contiguous memory (measured 1.0 ms vs 1.5 ms for 8x224x224).
    planar = resized.transpose(0, 3, 1, 2)
    if spec.channel_order == "RGB":
        planar = planar[:, ::-1]
    planar = np.ascontiguousarray(planar)
    scale, bias = _affine(spec)
    # (x/255 - mean)/std == x*scale + bias: one fused multiply-add over the whole batch
    np.multiply(planar, scale, out=out, casting="unsafe")
    out += bias
    return out


def _affine(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    std = np.asarray(spec.std, np.float64)
    mean = np.asarray(spec.mean, np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(1, 3, 1, 1)
    bias = (-mean / std).astype(np.float32).reshape(1, 3, 1, 1)
    return scale, bias
