"""Regions of interest: the full frame, or face boxes grown by the contract's margin.

A Box is (x0, y0, x1, y1) in integer pixels, x1/y1 exclusive, always inside the frame.

Face detection sits behind one small interface, :class:`FaceDetector` (``detect(image) -> [(x, y, w, h, score)]``,
largest first): OpenCV's bundled Haar cascade by default, ``cv2.FaceDetectorYN`` when the user supplies a YuNet
ONNX file. The watch pipeline picks its detector (BlazeFace by default) in runtime/face_detectors.py and tracks faces
between detector runs in runtime/tracking.py; :class:`RoiExtractor` is the one-shot form training and calibration use.

No-face rule: a frame for which no box is detected or held gets no model score. It is counted (``no_face``) and
stays in the stream's decision window as an unscored frame; when too few frames of the window are scored, the
stream's state becomes UNKNOWN (see runtime/decision.py). A frame without a face is never counted as real.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

from fakewatch.core.contract import ModelSpec

Box = tuple[int, int, int, int]
Detection = tuple[float, float, float, float, float]   # x, y, w, h, score


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


def dfdc_box(x: float, y: float, w: float, h: float, margin: float, frame_w: int, frame_h: int) -> Box:
    """DFDC winner's crop (selimsef ``kernel_utils.FaceExtractor``): integer box, plus ``side // 3`` on each side.

    Not square. ``margin`` (1/3 in their code) is applied as ``floor(side * margin)`` on the int-truncated box,
    which equals their ``side // 3``; the crop is clipped to the frame as their slicing clips it.
    """
    x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
    pw, ph = int((x1 - x0) * margin + 1e-6), int((y1 - y0) * margin + 1e-6)
    bx0, by0 = max(x0 - pw, 0), max(y0 - ph, 0)
    bx1, by1 = min(max(x1 + pw, 0), frame_w), min(max(y1 + ph, 0), frame_h)
    return (bx0, by0, max(bx1, bx0 + 1), max(by1, by0 + 1))


def sbi_box(x: float, y: float, w: float, h: float, margin: float, frame_w: int, frame_h: int) -> Box:
    """SBI's test-time crop (mapooon ``crop_face(..., crop_by_bbox=True, phase='test')``): ``side/4 * 0.5`` = side/8
    (``margin``) on each side, ``int()`` on the near edges, ``int() + 1`` on the far ones, clipped to the frame."""
    x1f, y1f = x + w, y + h
    bx0 = max(0, int(x - w * margin))
    by0 = max(0, int(y - h * margin))
    bx1 = min(frame_w, int(x1f + w * margin) + 1)
    by1 = min(frame_h, int(y1f + h * margin) + 1)
    return (bx0, by0, max(bx1, bx0 + 1), max(by1, by0 + 1))


# The contract's roi_rule -> how a detector box (x, y, w, h) becomes the crop box.
ROI_RULES = {"square": expand_box, "dfdc": dfdc_box, "sbi": sbi_box}


def face_box(x: float, y: float, w: float, h: float, spec: ModelSpec, frame_w: int, frame_h: int) -> Box:
    """The crop ``spec`` asks for around one detected face."""
    return ROI_RULES[spec.roi_rule](x, y, w, h, spec.roi_margin, frame_w, frame_h)


class FaceDetector(Protocol):
    """The one detector interface: faces as (x, y, w, h, score), largest first."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


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

    def detect(self, image: np.ndarray) -> list[Detection]:
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


class YuNetFaceDetector:
    """``cv2.FaceDetectorYN`` with a user-supplied YuNet ONNX (e.g. face_detection_yunet_2023mar.onnx)."""

    def __init__(self, model_path: str | Path, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 top_k: int = 50) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"YuNet face detector {path} does not exist; pass the path of a YuNet .onnx "
                                    f"(opencv_zoo face_detection_yunet) or drop --face-detector to use Haar")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise RuntimeError(f"this OpenCV ({cv2.__version__}) has no FaceDetectorYN; upgrade to opencv-python>=4.8")
        try:
            self._det = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, top_k)
        except cv2.error as exc:
            raise ValueError(f"{path} is not a YuNet model OpenCV can load ({str(exc).strip().splitlines()[-1]})") \
                from None
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        if self._size != (w, h):  # YuNet needs the input size; set once per frame size (cheap)
            self._det.setInputSize((w, h))
            self._size = (w, h)
        _ok, faces = self._det.detect(image)
        if faces is None:
            return []
        out = [(float(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[14])) for f in faces]
        return sorted(out, key=lambda f: -f[2] * f[3])


class RoiExtractor:
    """Turns a frame into the boxes the model looks at, following the model's contract."""

    def __init__(self, spec: ModelSpec, detector: FaceDetector | None = None, max_faces: int = 4) -> None:
        self.spec = spec
        self.max_faces = max_faces
        self.detector = detector if detector is not None else (HaarFaceDetector() if spec.roi == "face" else None)

    def __call__(self, image: np.ndarray) -> list[Box]:
        if self.spec.roi == "full":
            return [full_box(image)]
        h, w = image.shape[:2]
        faces = self.detector.detect(image)[: self.max_faces]
        return [face_box(x, y, bw, bh, self.spec, w, h) for (x, y, bw, bh, _s) in faces]


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def boxes_for(images: Sequence[np.ndarray], roi: RoiExtractor) -> list[list[Box]]:
    return [roi(im) for im in images]
