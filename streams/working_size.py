"""Reader-side frame reduction: streams far larger than the models need are scaled down in the reader thread.

The decoder still produces full frames (H.264/H.265 cannot decode a lower resolution), but every later stage (face
detection's letterbox, crops, the frames kept for snapshots, the memory a frame holds while it waits) then works on
the smaller copy, and ``cv2.resize`` runs in the reader thread without the GIL, in parallel with the pipeline.

Only whole-number factors are used (1/2, 1/3, ...): OpenCV's INTER_AREA has a fast path for them (1080p -> 540p
~1 ms, 720p -> 360p ~0.25 ms on the development CPU), while a 1.5x INTER_AREA reduction costs ~12 ms, more than it
saves (``benchmarks/results/face_roi/reader_resize.md``). A frame is reduced by the smallest whole factor that brings
its height to ``max_height`` or below; the classifier's face crop then comes from the reduced frame, so
``max_height`` must keep faces large enough for the model input (the benchmark measures crop PSNR and the
classifier's score change against full-resolution crops).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MIN_HEIGHT = 120    # below this no face crop would reach even a 112 px model input


@dataclass(frozen=True)
class WorkingSize:
    """Scale frames taller than ``max_height`` down by a whole factor (aspect ratio kept)."""

    max_height: int

    def __post_init__(self) -> None:
        if not isinstance(self.max_height, int) or self.max_height < MIN_HEIGHT:
            raise ValueError(f"reader max height (--reader-max-height) must be an integer >= {MIN_HEIGHT} px, got "
                             f"{self.max_height!r}; "
                             f"use e.g. 540 for 1080p cameras, or leave it unset to keep full frames")

    def factor(self, height: int) -> int:
        """The whole factor a frame of ``height`` rows is reduced by (1 = kept as it is)."""
        return max(1, math.ceil(height / self.max_height))

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """(reduced image, factor). Sizes that do not divide evenly lose at most ``factor - 1`` edge pixels."""
        f = self.factor(image.shape[0])
        if f == 1:
            return image, 1
        h, w = image.shape[0] // f, image.shape[1] // f
        # crop to a multiple of f so INTER_AREA takes its exact-integer path (a few edge pixels at most)
        return cv2.resize(image[: h * f, : w * f], (w, h), interpolation=cv2.INTER_AREA), f
