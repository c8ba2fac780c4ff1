"""Training data: discover media, sample frames, crop ROIs exactly as the runtime does, cache crops, split by video.

Inputs
  * a folder with ``real/`` and ``fake/`` (either may be missing when ``--synth sbi`` makes the fakes), holding videos
    and/or images in nested folders, or
  * a CSV manifest ``path,label[,video_id]`` (header optional; label ``real``/``fake`` or ``0``/``1``; relative
    paths are relative to the CSV).

Group ("video id") of each item: the manifest's ``video_id``; else a video file's own path; else an image's folder
(relative to its class folder), or the image itself when it lies directly in ``real/``/``fake/``. Train/val split is
done on groups, never on frames, and saved.

Crops: ``fakewatch.core.roi.RoiExtractor(spec)`` boxes on the decoded frame (largest face only; frames with no face are
skipped and counted), cut with ``fakewatch.core.roi.crop`` at native resolution and cached losslessly (PNG). The model
input is then ``fakewatch.core.preprocess.preprocess([crop], [full box], spec)`` — the same resize/normalise function
the runtime applies to ``frame[box]``, on the same pixels.
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from fakewatch.core.contract import ModelSpec

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
LABELS = {"real": 0, "0": 0, "fake": 1, "1": 1}
CACHE_VERSION = 2


class DataError(ValueError):
    """The dataset cannot be read as asked."""


@dataclass(frozen=True)
class MediaItem:
    path: str
    label: int          # 0 real, 1 fake
    video_id: str
    kind: str           # "video" | "image"


@dataclass(frozen=True)
class CropRecord:
    file: str           # cached crop (PNG), absolute path
    label: int
    video_id: str
    source: str         # media path it came from
    frame_index: int
    face_box: tuple[int, int, int, int]   # face (detector box, not grown) in crop coordinates: where SBI blends
    landmarks: str | None = None          # .npy of 468 FaceMesh points in crop coordinates (--sbi-mask landmarks)


# ------------------------------------------------------------------------------------------------ discovery
def _kind(path: Path) -> str | None:
    ext = path.suffix.lower()
    return "video" if ext in VIDEO_EXTS else "image" if ext in IMAGE_EXTS else None


def discover(data: str | Path, *, require_fake: bool = True) -> list[MediaItem]:
    """Media items of a ``real/``+``fake/`` folder or a CSV manifest (see module docstring)."""
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"dataset {data} does not exist; pass a folder with real/ and fake/ or a CSV "
                                f"manifest (path,label[,video_id])")
    items = _from_manifest(data) if data.is_file() else _from_folder(data)
    labels = {it.label for it in items}
    if 0 not in labels:
        raise DataError(f"dataset {data}: no real media found (expected real/ with videos/images, or manifest "
                        f"rows labelled real); supported: {sorted(VIDEO_EXTS | IMAGE_EXTS)}")
    if require_fake and 1 not in labels:
        raise DataError(f"dataset {data}: no fake media found; add fake/ (or fake rows), or make fakes from the "
                        f"real faces with --synth sbi")
    return items


def _from_folder(root: Path) -> list[MediaItem]:
    if not (root / "real").is_dir() and not (root / "fake").is_dir():
        raise DataError(f"dataset folder {root} has neither real/ nor fake/ (found: "
                        f"{sorted(p.name for p in root.iterdir())[:10]}); lay it out as {root}/real/... and "
                        f"{root}/fake/..., or pass a CSV manifest")
    items: list[MediaItem] = []
    for name, label in (("real", 0), ("fake", 1)):
        cls = root / name
        if not cls.is_dir():
            continue
        for p in sorted(cls.rglob("*")):
            kind = _kind(p)
            if kind is None or not p.is_file():
                continue
            rel = p.relative_to(cls)
            if kind == "video" or rel.parent == Path("."):
                vid = f"{name}/{rel.as_posix()}"
            else:
                vid = f"{name}/{rel.parent.as_posix()}"   # images in a folder = frames of one video/identity
            items.append(MediaItem(str(p.resolve()), label, vid, kind))
    return items


def _from_manifest(path: Path) -> list[MediaItem]:
    items: list[MediaItem] = []
    with path.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].strip().startswith("#"):
                continue
            if lineno == 1 and row[0].strip().lower() == "path":
                continue   # header
            if len(row) < 2:
                raise DataError(f"{path}:{lineno}: expected path,label[,video_id], got {row}")
            label = LABELS.get(row[1].strip().lower())
            if label is None:
                raise DataError(f"{path}:{lineno}: label {row[1]!r} is not real/fake/0/1")
            p = Path(row[0].strip())
            p = p if p.is_absolute() else (path.parent / p)
            kind = _kind(p)
            if kind is None:
                raise DataError(f"{path}:{lineno}: {p.name} is neither a video nor an image "
                                f"({sorted(VIDEO_EXTS | IMAGE_EXTS)})")
            if not p.is_file():
                raise FileNotFoundError(f"{path}:{lineno}: {p} does not exist")
            vid = row[2].strip() if len(row) > 2 and row[2].strip() else str(p.resolve())
            items.append(MediaItem(str(p.resolve()), label, vid, kind))
    if not items:
        raise DataError(f"manifest {path} has no rows")
    return items


# ------------------------------------------------------------------------------------------------ frames
def sample_indices(count: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``count`` frames (centres of n equal parts); all when count <= n."""
    if count <= 0:
        return []
    if count <= n:
        return list(range(count))
    return sorted({int((i + 0.5) * count / n) for i in range(n)})


def read_frames(item: MediaItem, n: int) -> list[tuple[int, np.ndarray]]:
    """(frame index, BGR image) pairs: the image itself, or ``n`` frames sampled evenly from a video."""
    if item.kind == "image":
        img = cv2.imread(item.path, cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"cannot decode image {item.path}")
        return [(0, img)]
    cap = cv2.VideoCapture(item.path)
    if not cap.isOpened():
        raise DataError(f"cannot open video {item.path} with OpenCV (FFmpeg backend)")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames: list[tuple[int, np.ndarray]] = []
    if count <= 0:   # unknown length (some containers): decode all, then sample
        allf = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            allf.append(f)
        cap.release()
        return [(i, allf[i]) for i in sample_indices(len(allf), n)]
    wanted = set(sample_indices(count, n))
    i = 0
    while wanted and i <= max(wanted):   # sequential decode: exact frames, no keyframe-seek surprises
        ok, f = cap.read()
        if not ok:
            break
        if i in wanted:
            frames.append((i, f))
        i += 1
    cap.release()
    return frames


# ------------------------------------------------------------------------------------------------ crops
def _face_for_crop(image: np.ndarray, spec: ModelSpec, extractor) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(crop box in the frame, face box in crop coordinates) of the largest face, via the runtime's ROI code."""
    from fakewatch.core.roi import expand_box, full_box
    from fakewatch.core.sbi import central_box

    h, w = image.shape[:2]
    if spec.roi == "full":
        faces = _detector().detect(image)
        if faces:
            x, y, bw, bh, _ = faces[0]
            face = (int(round(x)), int(round(y)), int(round(x + bw)), int(round(y + bh)))
        else:
            face = central_box(image.shape)   # synthetic data / non-face content: blend the centre
        return full_box(image), face
    faces = extractor.detector.detect(image)   # the runtime's detector; one run per frame
    if not faces:
        return None
    # the largest face, grown exactly as RoiExtractor.__call__ grows it (tested to match)
    x, y, bw, bh, _ = faces[0]
    box = expand_box(x, y, bw, bh, spec.roi_margin, w, h)
    x0, y0 = box[0], box[1]
    face = (int(round(x)) - x0, int(round(y)) - y0, int(round(x + bw)) - x0, int(round(y + bh)) - y0)
    return box, face


_DET = None


def _detector():
    global _DET
    if _DET is None:
        from fakewatch.core.roi import HaarFaceDetector
        _DET = HaarFaceDetector()
    return _DET


def _cache_key(item: MediaItem, spec: ModelSpec, n: int) -> str:
    from fakewatch.core.roi import HaarFaceDetector

    st = Path(item.path).stat()
    payload = json.dumps([CACHE_VERSION, item.path, st.st_size, int(st.st_mtime), n, spec.roi, spec.roi_margin,
                          list(HaarFaceDetector.DEFAULT_ANGLES) if hasattr(HaarFaceDetector, "DEFAULT_ANGLES")
                          else []])
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def build_crops(items: Sequence[MediaItem], spec: ModelSpec, cache_dir: str | Path, frames_per_video: int = 32,
                progress: bool = True, landmarker: Any = None) -> tuple[list[CropRecord], dict[str, Any]]:
    """Crop every sampled frame (cached on disk). Returns (records, summary with counts and skipped frames).
    With a ``landmarker`` (``fakewatch.core.landmarks.FaceMesh``) each crop also gets its landmarks (cached next to
    it; crops where the model sees no face keep none and fall back to box masks)."""
    from fakewatch.core.roi import RoiExtractor, crop
    from fakewatch.training._progress import bar

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    extractor = RoiExtractor(spec, detector=_detector() if spec.roi == "face" else None, max_faces=1)
    records: list[CropRecord] = []
    no_face = 0
    hits = 0
    for item in bar(items, desc="crops", unit="file", disable=not progress):
        key = _cache_key(item, spec, frames_per_video)
        d = cache_dir / key
        meta = d / "meta.json"
        if meta.is_file():
            entries = json.loads(meta.read_text())
            hits += 1
        else:
            d.mkdir(parents=True, exist_ok=True)
            entries = []
            for idx, image in read_frames(item, frames_per_video):
                found = _face_for_crop(image, spec, extractor)
                if found is None:
                    entries.append({"frame_index": idx, "file": None})
                    continue
                box, face = found
                name = f"{idx:06d}.png"
                cv2.imwrite(str(d / name), crop(image, box))
                entries.append({"frame_index": idx, "file": name, "face_box": list(face)})
            meta.write_text(json.dumps(entries))
        marks = _landmarks(d, entries, landmarker) if landmarker is not None else {}
        for e in entries:
            if e["file"] is None:
                no_face += 1
                continue
            records.append(CropRecord(str(d / e["file"]), item.label, item.video_id, item.path, e["frame_index"],
                                      tuple(e["face_box"]), marks.get(e["file"])))
    summary = {"landmark_crops": sum(r.landmarks is not None for r in records)} if landmarker is not None else {}
    summary |= {"media": len(items), "videos": sum(it.kind == "video" for it in items),
               "images": sum(it.kind == "image" for it in items), "crops": len(records),
               "frames_without_face": no_face, "cache_hits": hits, "frames_per_video": frames_per_video,
               "real_crops": sum(r.label == 0 for r in records), "fake_crops": sum(r.label == 1 for r in records)}
    if not records:
        raise DataError(f"no usable crops: {no_face} sampled frames had no face (roi={spec.roi}); check the data or "
                        f"train a full-frame model (--roi full)")
    return records, summary


LANDMARK_MIN_PRESENCE = 0.5


def _landmarks(d: Path, entries: list[dict[str, Any]], landmarker: Any) -> dict[str, str]:
    """crop file name -> landmark .npy path, computed once per cache folder (``landmarks.json`` marks it done)."""
    done = d / "landmarks.json"
    if done.is_file():
        return {k: str(d / v) for k, v in json.loads(done.read_text()).items()}
    found: dict[str, str] = {}
    for e in entries:
        if e["file"] is None:
            continue
        img = cv2.imread(str(d / e["file"]), cv2.IMREAD_COLOR)
        pts, presence = landmarker.infer(img, tuple(e["face_box"]))
        if presence >= LANDMARK_MIN_PRESENCE:
            name = e["file"].rsplit(".", 1)[0] + ".landmarks.npy"
            np.save(d / name, pts.astype(np.float32))
            found[e["file"]] = name
    done.write_text(json.dumps(found))
    return {k: str(d / v) for k, v in found.items()}


def load_crop(record: CropRecord) -> np.ndarray:
    img = cv2.imread(record.file, cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cached crop {record.file} is unreadable; delete the cache folder and retry")
    return img


class CropCache:
    """Decoded crops by file, the first ``limit`` kept in memory (datasets re-read the same crops every epoch)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._images: dict[str, np.ndarray] = {}

    def get(self, record: CropRecord) -> np.ndarray:
        img = self._images.get(record.file)
        if img is None:
            img = load_crop(record)
            if len(self._images) < self.limit:
                self._images[record.file] = img
        return img


# ------------------------------------------------------------------------------------------------ split
def split_groups(records: Iterable[CropRecord], val_frac: float = 0.2, seed: int = 0) -> dict[str, str]:
    """video_id -> "train"|"val", stratified by label; each label with >= 2 groups gets >= 1 val group."""
    by_label: dict[int, list[str]] = {}
    for r in records:
        lst = by_label.setdefault(r.label, [])
        if r.video_id not in lst:
            lst.append(r.video_id)
    out: dict[str, str] = {}
    rnd = random.Random(seed)
    for label in sorted(by_label):
        groups = sorted(by_label[label])
        rnd.shuffle(groups)
        n_val = int(round(len(groups) * val_frac))
        if len(groups) >= 2:
            n_val = min(max(1, n_val), len(groups) - 1)
        else:
            n_val = 0
        for i, g in enumerate(groups):
            out[g] = "val" if i < n_val else "train"
    return out


def save_split(path: str | Path, split: dict[str, str], extra: dict[str, Any] | None = None) -> None:
    doc = {"split": dict(sorted(split.items())), **(extra or {})}
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")


def load_split(path: str | Path) -> dict[str, str]:
    return dict(json.loads(Path(path).read_text())["split"])


def records_to_json(records: Sequence[CropRecord]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]
