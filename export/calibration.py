"""Calibration and held-out frames for quantization: real frames through the runtime's own ROI + preprocessing.

Sources are what ``fakewatch watch`` reads: image files, folders of images/videos, video files, and (via
``streams.open_source``) live sources such as webcams, RTSP/HTTP URLs and ``demo``. Every frame goes through
``fakewatch.core.roi.RoiExtractor(spec)`` and ``fakewatch.core.preprocess.preprocess`` - exactly the tensors the model
sees in production, so the activation ranges the calibrator measures are the ones that matter. Random tensors are never
used.

Sampling: files are sampled evenly over their whole length (a 10-minute clip contributes frames from its start,
middle and end, not its first 4 seconds); live sources are read with a stride. With ``roi="face"`` each detected
face is one sample; frames without a face contribute nothing (and are counted).

Labels (for the fidelity report's AUC): a live frame's ``truth["fake"]`` (the demo source sets it), or a file's
parent folder named like one of the contract's labels (``.../real/x.jpg``, ``.../fake/y.mp4``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from fakewatch.core.contract import ModelSpec

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".y4m"}
DEFAULT_LIVE_STRIDE = 5          # keep every 5th live frame so consecutive, near-identical frames do not dominate


class CalibrationError(ValueError):
    """Calibration/held-out frames could not be collected (empty, unreadable or face-less sources)."""


@dataclass
class FrameSet:
    """Preprocessed model inputs plus where each came from."""

    inputs: np.ndarray                       # float32 (N, 3, H, W), exactly what the runtime feeds the model
    labels: np.ndarray                       # float32 (N,): 1 fake, 0 real, NaN unknown
    origins: list[str] = field(default_factory=list)   # "path#frame" / "source#seq" per sample
    stats: dict = field(default_factory=dict)          # frames read, frames without ROI, per source counts

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def has_labels(self) -> bool:
        known = self.labels[~np.isnan(self.labels)]
        return known.size > 0 and np.unique(known).size == 2   # AUC needs both classes

    def subset(self, idx: Sequence[int] | np.ndarray) -> "FrameSet":
        idx = np.asarray(idx, dtype=np.int64)
        return FrameSet(self.inputs[idx], self.labels[idx], [self.origins[i] for i in idx], dict(self.stats))


# ---------------------------------------------------------------------- frame iteration per source kind
def _label_from_path(path: Path, spec: ModelSpec) -> float:
    if spec.output != "fake_logit":
        return float("nan")
    parent = path.parent.name.lower()
    real, fake = spec.labels[0].lower(), spec.labels[1].lower()
    return 1.0 if parent == fake else 0.0 if parent == real else float("nan")


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)   # always 3-channel BGR (grayscale is expanded)
    if image is None or image.size == 0:
        raise CalibrationError(f"calibration image {path} cannot be decoded by OpenCV; remove it or convert it "
                               f"to JPEG/PNG")
    return image


def _video_frames(path: Path, want: int) -> Iterator[tuple[str, np.ndarray]]:
    """``want`` frames spread evenly over the video (sequential grab: seeking is unreliable in many codecs)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CalibrationError(f"calibration video {path} cannot be opened by OpenCV (unsupported container or "
                               f"codec, or not a video); re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        stride = max(1, total // max(1, want)) if total > 0 else 1
        idx = got = 0
        while got < want:
            if not cap.grab():
                break
            if idx % stride == 0:
                ok, image = cap.retrieve()
                if ok and image is not None:
                    got += 1
                    yield f"{path}#{idx}", image
            idx += 1
    finally:
        cap.release()


def _live_frames(uri: str, want: int, stride: int) -> Iterator[tuple[str, np.ndarray, float]]:
    try:
        from fakewatch.streams import open_source
    except (ImportError, AttributeError) as exc:
        raise CalibrationError(f"calibration source {uri!r} is not a file or folder, and live sources need "
                               f"streams.open_source, which is not available ({exc})") from None
    source = open_source(uri)
    source.open()
    try:
        seq = got = 0
        while got < want:
            raw = source.read()
            if raw is None:
                break
            if seq % stride == 0:
                label = float("nan")
                if raw.truth and "fake" in raw.truth:
                    label = 1.0 if raw.truth["fake"] else 0.0
                got += 1
                yield f"{source.id}#{seq}", raw.image, label
            seq += 1
    finally:
        source.close()


def _expand_sources(sources: Sequence[str | os.PathLike]) -> list[tuple[str, str | Path]]:
    """(kind, target) per readable item; folders expand to their sorted images and videos."""
    items: list[tuple[str, str | Path]] = []
    for src in sources:
        text = str(src)
        path = Path(text).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
            if not found:
                raise CalibrationError(
                    f"calibration folder {path} holds no images ({', '.join(sorted(IMAGE_EXTS))}) or videos "
                    f"({', '.join(sorted(VIDEO_EXTS))}); point --calib at frames from the deployment cameras")
            items += [("image" if p.suffix.lower() in IMAGE_EXTS else "video", p) for p in found]
        elif path.is_file():
            if path.stat().st_size == 0:
                raise CalibrationError(f"calibration source {path} is an empty file")
            items.append(("image" if path.suffix.lower() in IMAGE_EXTS else "video", path))
        elif "://" in text or text.isdigit() or text.startswith("/dev/video") or text == "demo":
            items.append(("live", text))
        else:
            raise CalibrationError(f"calibration source {text!r} does not exist (not a file, folder, camera index, "
                                   f"/dev/videoN, URL or 'demo'); check the path")
    return items


def iter_images(sources: Sequence[str | os.PathLike], max_frames: int, spec: ModelSpec,
                live_stride: int = DEFAULT_LIVE_STRIDE) -> Iterator[tuple[str, np.ndarray, float]]:
    """(origin, BGR image, label) from ``sources``, spreading ``max_frames`` over them."""
    items = _expand_sources(sources)
    n_images = sum(1 for kind, _ in items if kind == "image")
    n_streams = len(items) - n_images
    # Images give one frame each; the remaining budget is split over videos/live sources.
    per_stream = max(1, -(-(max_frames - min(n_images, max_frames)) // n_streams)) if n_streams else 0
    for kind, target in items:
        if kind == "image":
            yield f"{target}", _read_image(Path(target)), _label_from_path(Path(target), spec)
        elif kind == "video":
            label = _label_from_path(Path(target), spec)
            n = 0
            for origin, image in _video_frames(Path(target), per_stream):
                n += 1
                yield origin, image, label
            if n == 0:
                raise CalibrationError(f"calibration video {target} decoded no frames (empty or corrupt)")
        else:
            yield from _live_frames(str(target), per_stream, live_stride)


def collect_frames(sources: Sequence[str | os.PathLike], spec: ModelSpec, max_samples: int, *,
                   roi_extractor=None, progress: bool = True, desc: str = "calibration frames",
                   live_stride: int = DEFAULT_LIVE_STRIDE) -> FrameSet:
    """Up to ``max_samples`` model inputs from ``sources``, via the runtime's ROI extractor and preprocessing."""
    from tqdm import tqdm

    from fakewatch.core.preprocess import preprocess
    from fakewatch.core.roi import RoiExtractor

    if not sources:
        raise CalibrationError(f"no {desc} sources given; pass video files, image folders or live sources")
    if max_samples < 1:
        raise CalibrationError(f"{desc}: need at least 1 sample, asked for {max_samples}")
    roi = roi_extractor if roi_extractor is not None else RoiExtractor(spec)
    inputs: list[np.ndarray] = []
    labels: list[float] = []
    origins: list[str] = []
    frames_read = frames_without_roi = 0
    with tqdm(total=max_samples, desc=desc, unit="sample", disable=not progress, leave=False) as bar:
        for origin, image, label in iter_images(sources, max_samples, spec, live_stride):
            frames_read += 1
            boxes = roi(image)[: max_samples - len(origins)]
            if not boxes:
                frames_without_roi += 1
                continue
            inputs.append(preprocess([image] * len(boxes), boxes, spec))
            labels += [label] * len(boxes)
            origins += [origin if len(boxes) == 1 else f"{origin}@{b}" for b in boxes]
            bar.update(len(boxes))
            if len(origins) >= max_samples:
                break
    stats = {"frames_read": frames_read, "frames_without_roi": frames_without_roi, "samples": len(origins),
             "roi": spec.roi}
    if not origins:
        if frames_read == 0:
            raise CalibrationError(f"{desc}: the sources {[str(s) for s in sources]} delivered no frames")
        raise CalibrationError(
            f"{desc}: read {frames_read} frame(s) but the {spec.roi!r} ROI found nothing to crop in any of them "
            f"(the model's contract asks for faces); use footage with visible faces")
    return FrameSet(np.concatenate(inputs).astype(np.float32, copy=False), np.asarray(labels, np.float32),
                    origins, stats)


def split_holdout(frames: FrameSet, holdout: int) -> tuple[FrameSet, FrameSet]:
    """Disjoint (calibration, held-out) sets: every k-th sample is held out, so both span every source."""
    n = len(frames)
    if holdout <= 0:
        raise CalibrationError("the held-out set must have at least 1 sample")
    if n < 2 or holdout >= n:
        raise CalibrationError(f"only {n} sample(s) collected, not enough for a held-out split of {holdout}; "
                               f"add sources or pass separate --holdout sources")
    hold = np.unique(np.linspace(0, n - 1, holdout).round().astype(np.int64))
    mask = np.zeros(n, bool)
    mask[hold] = True
    return frames.subset(np.flatnonzero(~mask)), frames.subset(np.flatnonzero(mask))


def make_data_reader(inputs: np.ndarray, input_name: str, batch: int = 8):
    """An onnxruntime ``CalibrationDataReader`` over preprocessed inputs, in small batches (rewindable)."""
    from onnxruntime.quantization import CalibrationDataReader  # lazy: keeps this module import-light

    class ArrayDataReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.pos = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.pos >= len(inputs):
                return None
            chunk = inputs[self.pos:self.pos + max(1, batch)]
            self.pos += max(1, batch)
            return {input_name: np.ascontiguousarray(chunk)}

        def rewind(self) -> None:
            self.pos = 0

    return ArrayDataReader()
