"""BlazeFace (MediaPipe face detection) pre- and post-processing in NumPy: letterbox, SSD anchors, decode, NMS.

The network itself runs on whichever backend runs the classifier (see runtime/face_detectors.py); everything around
it is here so the converter (export/blazeface_convert.py) and the runtime share one definition. The numbers come
from the model's sidecar (``face_detector`` section), which follows MediaPipe's calculators:

* ``SsdAnchorsCalculator``: anchor centres on each stride's grid; with ``interpolated_scale_aspect_ratio == 1`` two
  anchors per cell and per layer of the same stride; ``fixed_anchor_size`` means every anchor is 1x1, so regressor
  offsets are plain input pixels / ``box_scale``.
* ``TensorsToDetectionsCalculator``: per anchor ``[x, y, w, h, kp0x, kp0y, ... kp5x, kp5y, score_logit]``; score =
  sigmoid(clip(logit, ±raw_score_clip)); keep score >= ``score_threshold``.
* ``NonMaxSuppressionCalculator`` (WEIGHTED): the best box absorbs every box overlapping it by more than ``iou`` and
  becomes their score-weighted mean (steadier than plain NMS, which keeps the single best).
* Letterbox (``keep_aspect_ratio``): the frame is scaled to fit the square input and padded evenly; boxes are mapped
  back with the same scale and padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

KEYPOINTS = 6
VALUES = 4 + 2 * KEYPOINTS + 1


@dataclass(frozen=True)
class SsdAnchors:
    """The MediaPipe SSD anchor options BlazeFace uses (fixed-size anchors; only centres vary)."""

    input_size: int
    num_layers: int
    strides: tuple[int, ...]
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        if len(self.strides) != self.num_layers or any(s <= 0 or self.input_size % s for s in self.strides):
            raise ValueError(f"anchors: {self.num_layers} layers need as many strides dividing the input size "
                             f"{self.input_size}, got {list(self.strides)}")
        if not self.fixed_anchor_size:
            raise ValueError("anchors: only fixed_anchor_size=true (BlazeFace) is supported")

    @classmethod
    def from_dict(cls, input_size: int, d: Mapping[str, Any]) -> "SsdAnchors":
        known = {"num_layers", "strides", "anchor_offset_x", "anchor_offset_y", "interpolated_scale_aspect_ratio",
                 "fixed_anchor_size"}
        return cls(int(input_size), **{k: v for k, v in d.items() if k in known})

    def generate(self) -> np.ndarray:
        """(A, 2) float32 anchor centres (x, y) in [0, 1], in the network's output order."""
        out: list[np.ndarray] = []
        layer = 0
        while layer < self.num_layers:
            last, repeats = layer, 0
            while last < self.num_layers and self.strides[last] == self.strides[layer]:
                last += 1
                repeats += 2 if self.interpolated_scale_aspect_ratio == 1.0 else 1
            n = self.input_size // self.strides[layer]
            c = (np.arange(n, dtype=np.float32) + 0.0)
            ys, xs = np.meshgrid((c + self.anchor_offset_y) / n, (c + self.anchor_offset_x) / n, indexing="ij")
            grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
            out.append(np.repeat(grid, repeats, axis=0))
            layer = last
        return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class DecodeConfig:
    """How raw outputs become face boxes (the sidecar's ``face_detector`` section, validated)."""

    input_size: int
    anchors: SsdAnchors
    box_scale: float
    score_threshold: float = 0.5
    raw_score_clip: float = 80.0
    nms_iou: float = 0.3
    nms_kind: str = "weighted"

    def __post_init__(self) -> None:
        if not 0.0 < self.score_threshold < 1.0:
            raise ValueError(f"face detector score_threshold must be in (0, 1), got {self.score_threshold}")
        if not 0.0 < self.nms_iou < 1.0:
            raise ValueError(f"face detector NMS IoU must be in (0, 1), got {self.nms_iou}")
        if self.nms_kind not in NMS_KINDS:
            raise ValueError(f"face detector NMS kind {self.nms_kind!r}: known kinds are {sorted(NMS_KINDS)}")

    @classmethod
    def from_section(cls, section: Mapping[str, Any], where: str = "sidecar") -> "DecodeConfig":
        try:
            size = int(section["input_size"][0])
            nms = section.get("nms", {})
            return cls(input_size=size, anchors=SsdAnchors.from_dict(size, section["anchors"]),
                       box_scale=float(section["box_scale"]),
                       score_threshold=float(section.get("score_threshold", 0.5)),
                       raw_score_clip=float(section.get("raw_score_clip", 80.0)),
                       nms_iou=float(nms.get("iou", 0.3)), nms_kind=str(nms.get("kind", "weighted")))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"{where}: face_detector section is incomplete ({exc!r}); re-run "
                             f"`python -m fakewatch.export.blazeface_convert`") from None


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the square input: input pixel = frame pixel * scale + pad."""

    scale: float
    pad_x: float
    pad_y: float
    frame_w: int
    frame_h: int


def downscale(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize for detection. A big downscale goes bilinear to twice the target, then INTER_AREA by exactly 2: close
    to a full INTER_AREA (which averages every source pixel, no aliasing) at a fraction of its cost, since OpenCV's
    INTER_AREA is fast only for integer factors (1280x720 -> 192x108: ~0.3 ms instead of ~12 ms here)."""
    ih, iw = image.shape[:2]
    if w * 2 < iw and h * 2 < ih:
        image = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if w < iw else cv2.INTER_LINEAR)


def letterbox(image: np.ndarray, size: int, out: np.ndarray | None = None) -> tuple[np.ndarray, Letterbox]:
    """BGR uint8 frame -> (3, size, size) float32 RGB in [-1, 1], aspect kept, padded evenly with 0 (grey).

    ``out`` (a (3, size, size) float32 view, e.g. one row of a batch) is filled in place when given.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    small = downscale(image, nw, nh)
    px, py = (size - nw) // 2, (size - nh) // 2
    if out is None:
        out = np.empty((3, size, size), np.float32)
    out.fill(0.0)
    rgb = small[:, :, ::-1].transpose(2, 0, 1)
    np.multiply(rgb, 1.0 / 127.5, out=out[:, py:py + nh, px:px + nw], casting="unsafe")
    out[:, py:py + nh, px:px + nw] -= 1.0
    return out, Letterbox(scale, float(px), float(py), w, h)


def decode(raw: np.ndarray, anchors: np.ndarray, cfg: DecodeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw output ((A*17,) or (A, 17)) -> boxes (K, 4) xyxy, scores (K,), keypoints (K, 6, 2).

    Coordinates are input pixels (0..input_size); only anchors scoring >= the threshold are decoded.
    """
    raw = np.asarray(raw, np.float32).reshape(len(anchors), VALUES)
    logits = np.clip(raw[:, -1], -cfg.raw_score_clip, cfg.raw_score_clip)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= cfg.score_threshold)
    r, a = raw[keep], anchors[keep] * cfg.input_size
    k = cfg.input_size / cfg.box_scale   # regressors are in box_scale units; anchors are 1x1 (fixed size)
    cx, cy = r[:, 0] * k + a[:, 0], r[:, 1] * k + a[:, 1]
    bw, bh = r[:, 2] * k, r[:, 3] * k
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    kps = r[:, 4:4 + 2 * KEYPOINTS].reshape(-1, KEYPOINTS, 2) * k + a[:, None, :]
    valid = (bw > 0) & (bh > 0)
    return boxes[valid], scores[keep][valid], kps[valid]


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of ``boxes``."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, weighted: bool = True,
        keypoints: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy NMS by score; ``weighted``: each kept box (and its keypoints) is the score-weighted mean of the boxes
    it suppresses (MediaPipe's WEIGHTED algorithm), its score stays the best one."""
    kps = keypoints if keypoints is not None else np.zeros((len(boxes), 0, 2), np.float32)
    order = np.argsort(-scores, kind="stable")
    b, s, kp = boxes[order], scores[order], kps[order]
    out_b, out_s, out_k = [], [], []
    while len(b):
        over = iou_one_to_many(b[0], b) > iou
        over[0] = True
        if weighted:
            w = s[over][:, None]
            out_b.append((b[over] * w).sum(0) / w.sum())
            out_k.append((kp[over] * w[:, :, None]).sum(0) / w.sum())
        else:
            out_b.append(b[0])
            out_k.append(kp[0])
        out_s.append(s[0])
        b, s, kp = b[~over], s[~over], kp[~over]
    if not out_b:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, kps.shape[1], 2), np.float32)
    return np.array(out_b, np.float32), np.array(out_s, np.float32), np.array(out_k, np.float32)


NMS_KINDS = {"weighted": True, "plain": False}


def to_frame(boxes: np.ndarray, scores: np.ndarray, lb: Letterbox,
             min_size: float = 1.0) -> list[tuple[float, float, float, float, float]]:
    """Input-pixel xyxy boxes -> frame (x, y, w, h, score), clipped to the frame, largest first."""
    out = []
    for (x0, y0, x1, y1), sc in zip(boxes, scores):
        fx0 = max(0.0, (x0 - lb.pad_x) / lb.scale)
        fy0 = max(0.0, (y0 - lb.pad_y) / lb.scale)
        fx1 = min(float(lb.frame_w), (x1 - lb.pad_x) / lb.scale)
        fy1 = min(float(lb.frame_h), (y1 - lb.pad_y) / lb.scale)
        if fx1 - fx0 >= min_size and fy1 - fy0 >= min_size:
            out.append((float(fx0), float(fy0), float(fx1 - fx0), float(fy1 - fy0), float(sc)))
    return sorted(out, key=lambda f: -f[2] * f[3])


def detections(raw: np.ndarray, anchors: np.ndarray, cfg: DecodeConfig,
               lb: Letterbox) -> list[tuple[float, float, float, float, float]]:
    """decode -> NMS -> frame coordinates for one image."""
    boxes, scores, kps = decode(raw, anchors, cfg)
    boxes, scores, _ = nms(boxes, scores, cfg.nms_iou, NMS_KINDS[cfg.nms_kind], kps)
    return to_frame(boxes, scores, lb)


__all__: Sequence[str] = ("DecodeConfig", "KEYPOINTS", "Letterbox", "NMS_KINDS", "SsdAnchors", "VALUES", "decode",
                          "detections", "downscale", "iou_one_to_many", "letterbox", "nms", "to_frame")
