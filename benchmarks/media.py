"""Generated video files for end-to-end and naive-loop runs (no downloads, reproducible, cached)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_SIZE = (640, 480)   # (width, height): a typical webcam frame
DEFAULT_FPS = 30


def synthetic_video(directory: str | Path, frames: int = 300, size: tuple[int, int] = DEFAULT_SIZE,
                    fps: int = DEFAULT_FPS) -> Path:
    """An MP4 (mp4v) of ``frames`` moving, textured frames; written once per (frames, size) into ``directory``.

    Texture + motion keep the decoder honest (a flat frame decodes unrealistically fast).
    """
    import cv2

    w, h = size
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"synthetic_{w}x{h}_{frames}f_{fps}fps.mp4"
    if path.is_file() and _frame_count(path) == frames:
        return path
    tmp = path.with_name("partial_" + path.name)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MP4 (mp4v) files here ({tmp}); opencv-python's bundled FFmpeg "
                           f"is needed for the end-to-end benchmark")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, size=(h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    try:
        for i in range(frames):
            img = np.empty((h, w, 3), np.uint8)
            img[..., 0] = ((xx + 4 * i) % 256).astype(np.uint8)
            img[..., 1] = ((yy + 2 * i) % 256).astype(np.uint8)
            img[..., 2] = ((xx + yy + 3 * i) % 256 // 2).astype(np.uint8)
            img = cv2.add(img, np.roll(noise, i, axis=1))
            cx, cy = int(w / 2 + w / 4 * np.sin(i / 15)), int(h / 2)
            cv2.ellipse(img, (cx, cy), (w // 8, h // 5), 0, 0, 360, (120, 160, 210), -1)  # a face-sized blob
            writer.write(img)
    finally:
        writer.release()
    if _frame_count(tmp) != frames:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"generated video {tmp} did not read back {frames} frames")
    tmp.replace(path)
    return path


def _frame_count(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()
