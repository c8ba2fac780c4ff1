"""CPU reference preprocessing: crop -> bilinear resize -> BGR->RGB (per contract) -> normalize -> CHW -> batch.

This is *the* definition of the model input; the CUDA kernel (runtime/cuda) must compute the same function.
Resize is cv2.INTER_LINEAR on the uint8 crop (half-pixel centres, OpenCV's fixed-point weights).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from export.contract import ModelSpec

from .roi import Box, crop


def preprocess(images: Sequence[np.ndarray], boxes: Sequence[Box], spec: ModelSpec,
               out: np.ndarray | None = None) -> np.ndarray:
    """One model input per (image, box) pair: float32 array (N, 3, H, W)."""
    if len(images) != len(boxes):
        raise ValueError(f"preprocess: {len(images)} images but {len(boxes)} boxes")
    h, w = spec.input_size
    n = len(images)
    if out is None:
        out = np.empty((n, 3, h, w), np.float32)
    if n == 0:
        return out
    resized = np.empty((n, h, w, 3), np.uint8)
    for i, (image, box) in enumerate(zip(images, boxes)):
        cv2.resize(crop(image, box), (w, h), dst=resized[i], interpolation=cv2.INTER_LINEAR)
    if spec.channel_order == "RGB":
        resized = resized[..., ::-1]
    # (x/255 - mean)/std == x*scale + bias, one fused multiply-add over the whole batch
    scale = (1.0 / (255.0 * np.asarray(spec.std, np.float32))).astype(np.float32)
    bias = (-np.asarray(spec.mean, np.float32) / np.asarray(spec.std, np.float32)).astype(np.float32)
    np.multiply(resized.transpose(0, 3, 1, 2), scale[None, :, None, None], out=out, casting="unsafe")
    out += bias[None, :, None, None]
    return out
