"""Regions of interest: the full frame, or face boxes grown by the contract's margin.

A Box is (x0, y0, x1, y1) in integer pixels, x1/y1 exclusive, always inside the frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from export.contract import ModelSpec

Box = tuple[int, int, int, int]


def full_box(image: np.ndarray) -> Box:
    h, w = image.shape[:2]
    return (0, 0, w, h)


def expand_box(x: float, y: float, w: float, h: float, margin: float, frame_w: int, frame_h: int) -> Box:
    """Grow a detector box by ``margin`` of its size on each side, make it square (faces), clip to the frame."""
    cx, cy = x + w / 2.0, y + h / 2.0
    side = max(w, h) * (1.0 + 2.0 * margin)
    x0 = int(round(max(0.0, cx - side / 2.0)))
    y0 = int(round(max(0.0, cy - side / 2.0)))
    x1 = int(round(min(float(frame_w), cx + side / 2.0)))
    y1 = int(round(min(float(frame_h), cy + side / 2.0)))
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


class HaarFaceDetector:
    """OpenCV's bundled frontal-face Haar cascade (opencv-python 4.x ships the XML)."""

    # In-plane angles (degrees) tried, in order, until one finds a face: the frontal cascade misses heads tilted by
    # more than ~15 degrees (e.g. 40 % of the demo clip); extra angles cost time only on frames where 0 found none.
    DEFAULT_ANGLES: tuple[float, ...] = (0.0, -20.0, 20.0)

    def __init__(self, min_size_frac: float = 0.08, angles: Sequence[float] = DEFAULT_ANGLES) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        if not path.is_file():
            raise FileNotFoundError(f"OpenCV's Haar cascade {path} is missing; install opencv-python<5")
        self._cascade = cv2.CascadeClassifier(str(path))
        self.min_size_frac = min_size_frac
        self.angles = tuple(float(a) for a in angles) or (0.0,)

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        """Faces as (x, y, w, h, score), largest first."""
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        m = max(12, int(min(gray.shape) * self.min_size_frac))
        h, w = gray.shape
        for angle in self.angles:
            if angle == 0.0:
                rects = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(m, m))
                faces = [(float(x), float(y), float(bw), float(bh), 1.0) for (x, y, bw, bh) in rects]
            else:
                # detect on the frame rotated about its centre, map each face centre back (size is unchanged)
                rot = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
                turned = cv2.warpAffine(gray, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                rects = self._cascade.detectMultiScale(turned, scaleFactor=1.1, minNeighbors=4, minSize=(m, m))
                back = cv2.invertAffineTransform(rot)
                faces = []
                for (x, y, bw, bh) in rects:
                    cx, cy = back @ np.array([x + bw / 2.0, y + bh / 2.0, 1.0])
                    faces.append((float(cx - bw / 2.0), float(cy - bh / 2.0), float(bw), float(bh), 0.9))
            if faces:
                return sorted(faces, key=lambda f: -f[2] * f[3])
        return []


class RoiExtractor:
    """Turns a frame into the boxes the model looks at, following the model's contract."""

    def __init__(self, spec: ModelSpec, detector: HaarFaceDetector | None = None, max_faces: int = 4) -> None:
        self.spec = spec
        self.max_faces = max_faces
        self.detector = detector if detector is not None else (HaarFaceDetector() if spec.roi == "face" else None)

    def __call__(self, image: np.ndarray) -> list[Box]:
        if self.spec.roi == "full":
            return [full_box(image)]
        h, w = image.shape[:2]
        faces = self.detector.detect(image)[: self.max_faces]
        return [expand_box(x, y, bw, bh, self.spec.roi_margin, w, h) for (x, y, bw, bh, _s) in faces]


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def boxes_for(images: Sequence[np.ndarray], roi: RoiExtractor) -> list[list[Box]]:
    return [roi(im) for im in images]
