"""Does the face detector change what the classifier sees? The demo model's held-out AUC per detector.

The bundled demo model was trained on Haar crops. This scores its held-out frames (carphone 90-119, never trained
on) with self-blended fakes, exactly as ``make_demo_model`` does (``fakewatch train --eval-only --synth sbi
--sbi-copies 4``), once per face detector: Haar (the training detector), BlazeFace full range on every frame,
BlazeFace full range detecting every K-th frame with tracking in between (the watch default K, and K=6, where the
load-driven cadence of runtime/detect_cadence.py stops), BlazeFace short range.

    python -m fakewatch.training.roi_auc    # -> benchmarks/results/face_roi/heldout_auc.{json,md}
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

OUT = Path("benchmarks") / "results" / "face_roi"
DETECTORS = ("haar", "blazeface", "blazeface+track", "blazeface+track6", "blazeface-short")
#: carphone frames never trained on (make_demo_model's hold-out before it moved to a multi-person split)
HELDOUT_FRAMES = range(90, 120)


def heldout_frames(work: Path) -> Path:
    """carphone frames 90-119 as PNGs in ``work/data/heldout/real/clip_90_119`` (the folder layout eval reads)."""
    import cv2

    from fakewatch.streams.demo import find_clip, load_clip

    frames, _fps = load_clip(str(find_clip()))
    held = work / "data" / "heldout"
    d = held / "real" / "clip_90_119"
    d.mkdir(parents=True, exist_ok=True)
    for k in HELDOUT_FRAMES:
        cv2.imwrite(str(d / f"frame_{k:03d}.png"), frames[k])
    return held


class TrackedDetector:
    """A detector that behaves like the watch pipeline's ROI stage on consecutive frames (30 fps): detect every K,
    constant-velocity tracks in between; returns the main track's face box."""

    def __init__(self, inner: Any, k: int, fps: float = 30.0) -> None:
        from fakewatch.runtime.tracking import FaceTracks, TrackConfig

        self.inner, self.fps, self.i = inner, fps, 0
        self.tracks = FaceTracks(TrackConfig(detect_every=k))

    def detect(self, image):
        shape, ts = image.shape[:2], self.i / self.fps
        self.i += 1
        tr = self.tracks.update("s", shape, ts, self.inner.detect(image)) if self.tracks.due("s", shape) \
            else self.tracks.predict("s", shape, ts)
        return [(*map(float, t.box), t.score) for t in tr]


def heldout_auc(name: str, work: Path) -> dict[str, Any]:
    from fakewatch.runtime.face_detectors import make_detector
    from fakewatch.runtime.pipeline import DEFAULT_DETECT_EVERY
    from fakewatch.runtime.watch_cli import DEMO_MODEL
    from fakewatch.training import data
    from fakewatch.training.evaluate import evaluate_artifact
    held = heldout_frames(work)
    det = make_detector(name.split("+")[0])
    # "+track": detect every K (the watch default) and track; "+trackN": every N (N=6: the load cadence's cap)
    k = name.split("+track")[1] if "+track" in name else None
    data._DET = TrackedDetector(det, int(k) if k else DEFAULT_DETECT_EVERY) if k is not None else det
    try:
        m, summary = evaluate_artifact(DEMO_MODEL, held, synth="sbi", sbi_copies=4, cache_dir=work / f"crops_{name}",
                                       progress=False)
    finally:
        data._DET = None
    return {"detector": name, "frame_auc": round(m.frame_auc, 4), "accuracy": round(m.accuracy, 4),
            "n_frames": m.n_frames, "frames_without_face": summary["frames_without_face"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rows = []
    for name in DETECTORS:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(heldout_auc(name, Path(tmp)))
        print(rows[-1], flush=True)
    args.output.mkdir(parents=True, exist_ok=True)
    doc = {"command": "python -m fakewatch.training.roi_auc", "model": "runtime/assets/demo/demo_model.onnx (INT8)",
           "data": "carphone frames 90-119 (held out) + 4 self-blended fakes each (seeded)", "rows": rows}
    (args.output / "heldout_auc.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = ["# Demo model held-out AUC per face detector", "", f"Command: `{doc['command']}`  ",
          f"Model: {doc['model']}; data: {doc['data']}", "",
          "| detector | frame AUC | accuracy | frames scored | frames without a face |", "|---|---|---|---|---|"]
    md += [f"| {r['detector']} | {r['frame_auc']:.4f} | {r['accuracy']:.4f} | {r['n_frames']} | "
           f"{r['frames_without_face']} |" for r in rows]
    (args.output / "heldout_auc.md").write_text("\n".join(md) + "\n")
    print(args.output / "heldout_auc.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
