"""What the readers cost, and what scaling frames down in the reader does to the classifier's crops.

``python -m fakewatch.benchmarks.reader_cost`` writes ``benchmarks/results/face_roi/reader_cost.{json,md,png}``:

* decode rows: N streams of the upscaled carphone footage (720p / 1080p H.264) decoded at once, unpaced, one reader
  thread each, with OpenCV's default FFmpeg threads (0 = one per CPU) or one thread per decoder, with and without a
  reader working size (streams/working_size.py). CPU ms per frame (process CPU / frames) is the figure that says how
  many camera frames per second the CPU can decode; wall ms per frame (all streams together) is the throughput.
* crop rows: the same footage's frames, faces found by BlazeFace on the full frame, classifier crops taken from the
  full frame and from the reduced frame (the same box scaled): PSNR of the model-size crops, and the demo model's
  P(fake) change. The footage is 176x144 carphone upscaled, so a reduced frame loses less here than it would on
  native HD video: the figures are an upper bound on quality kept for real HD content at the same face size.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.benchmarks.plots import pyplot

OUT = Path("benchmarks") / "results" / "face_roi"


def _load() -> str:
    from fakewatch.benchmarks.face_roi import _load as load

    return load()


def decode_row(video: Path, size: str, streams: int, threads: int, max_height: int | None,
               frames: int) -> dict[str, Any]:
    import cv2

    from fakewatch.streams.source import decode_params
    from fakewatch.streams.working_size import WorkingSize

    ws = WorkingSize(max_height) if max_height else None
    shapes: list[tuple[int, ...]] = []

    def work() -> None:
        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG, decode_params(threads))
        img = None
        for _ in range(frames):
            ok, img = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = cap.read()
            if ws is not None:
                img, _f = ws.apply(img)
        cap.release()
        shapes.append(img.shape)

    workers = [threading.Thread(target=work) for _ in range(streams)]
    t0, c0 = time.perf_counter(), time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = frames * streams
    return {"kind": "decode", "size": size, "streams": streams, "decode_threads": threads,
            "reader_max_height": max_height, "working": f"{shapes[0][1]}x{shapes[0][0]}",
            "cpu_ms_per_frame": round(cpu * 1e3 / n, 3), "wall_ms_per_frame": round(wall * 1e3 / n, 3),
            "frames": n}


def crop_rows(video: Path, size: str, heights: list[int], every: int = 8) -> list[dict[str, Any]]:
    from fakewatch.benchmarks.face_media import read_frames
    from fakewatch.core.metrics import sigmoid
    from fakewatch.core.preprocess import RESIZERS, preprocess
    from fakewatch.core.roi import crop, face_box
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.face_detectors import make_detector
    from fakewatch.runtime.watch_cli import DEMO_MODEL
    from fakewatch.streams.working_size import WorkingSize

    runner = load_runner(DEMO_MODEL, intra_op_threads=1).activate()
    spec = runner.spec
    det = make_detector("blazeface").activate()
    frames = read_frames(video)[0][::every]
    h_in, w_in = spec.input_size
    rows = []
    for mh in heights:
        ws = WorkingSize(mh)
        psnr, dp, faces, crop_px, jitter = [], [], 0, [], []
        for img in frames:
            found = det.detect(img)[:1]
            if not found:
                continue
            x, y, bw, bh, _s = found[0]
            H, W = img.shape[:2]
            full_box = face_box(x, y, bw, bh, spec, W, H)
            small, f = ws.apply(img)
            sh, sw = small.shape[:2]
            small_box = face_box(x / f, y / f, bw / f, bh / f, spec, sw, sh)
            a = np.empty((h_in, w_in, 3), np.uint8)
            b = np.empty((h_in, w_in, 3), np.uint8)
            RESIZERS[spec.resize](crop(img, full_box), w_in, h_in, a)
            RESIZERS[spec.resize](crop(small, small_box), w_in, h_in, b)
            mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
            psnr.append(99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))
            # control: the same full-frame crop moved by f-1 source pixels (what rounding a reduced box can do)
            moved = face_box(x + f - 1, y + f - 1, bw, bh, spec, W, H)
            logits = runner.infer(np.concatenate([preprocess([img], [full_box], spec),
                                                  preprocess([small], [small_box], spec),
                                                  preprocess([img], [moved], spec)]))
            p = sigmoid(logits[:, 0])
            dp.append(abs(float(p[0] - p[1])))
            jitter.append(abs(float(p[0] - p[2])))
            crop_px.append(small_box[3] - small_box[1])
            faces += 1
        rows.append({"kind": "crop", "size": size, "reader_max_height": mh,
                     "working": f"{frames[0].shape[1] // ws.factor(frames[0].shape[0])}x"
                                f"{frames[0].shape[0] // ws.factor(frames[0].shape[0])}",
                     "faces": faces, "crop_px_min": int(min(crop_px)) if crop_px else None,
                     "model_input": h_in, "psnr_db_mean": round(float(np.mean(psnr)), 2),
                     "psnr_db_min": round(float(np.min(psnr)), 2),
                     "p_fake_change_mean": round(float(np.mean(dp)), 4),
                     "p_fake_change_max": round(float(np.max(dp)), 4),
                     "shifted_box_p_fake_change_mean": round(float(np.mean(jitter)), 4),
                     "shifted_box_p_fake_change_max": round(float(np.max(jitter)), 4)})
        print(json.dumps(rows[-1]), flush=True)
    det.close()
    runner.deactivate()
    return rows


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "reader_cost.json", out / "reader_cost.md"]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n")
    dec = [r for r in doc["rows"] if r["kind"] == "decode"]
    crops = [r for r in doc["rows"] if r["kind"] == "crop"]
    md = ["# Reader cost: decoder threads, reader-side scaling, crop quality", "",
          f"Command: `{doc['command']}`  ", f"Machine: {doc['machine']}  ",
          f"Load before: `{doc['load_before']}`  ", f"Load after: `{doc['load_after']}`", "",
          "## Decoding N streams at once (unpaced; CPU ms per frame = process CPU / frames decoded)", "",
          "| size | streams | decoder threads | reader max height | working frame | CPU ms/frame | wall ms/frame |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['size']} | {r['streams']} | {r['decode_threads'] or 'default'} | {r['reader_max_height'] or ''} | "
           f"{r['working']} | {r['cpu_ms_per_frame']} | {r['wall_ms_per_frame']} |" for r in dec]
    md += ["", "## Crop quality: crops from the reduced frame vs the full frame (demo model, 112x112 input)", "",
           "| size | reader max height | working frame | faces | smallest crop px | PSNR dB mean | PSNR dB min | "
           "P(fake) change mean | max | control: full-res box moved f-1 px, mean | max |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['size']} | {r['reader_max_height']} | {r['working']} | {r['faces']} | {r['crop_px_min']} | "
           f"{r['psnr_db_mean']} | {r['psnr_db_min']} | {r['p_fake_change_mean']} | {r['p_fake_change_max']} | "
           f"{r['shifted_box_p_fake_change_mean']} | {r['shifted_box_p_fake_change_max']} |" for r in crops]
    paths[1].write_text("\n".join(md) + "\n")
    plt = pyplot()
    if plt is None:
        return paths
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for key in sorted({(r["size"], r["decode_threads"], r["reader_max_height"] or 0) for r in dec}):
        pts = sorted((r["streams"], r["cpu_ms_per_frame"]) for r in dec
                     if (r["size"], r["decode_threads"], r["reader_max_height"] or 0) == key)
        label = f"{key[0]}, threads {key[1] or 'default'}" + (f", reader -> {key[2]} rows" if key[2] else "")
        ax.plot(*zip(*pts), "o-", label=label)
    ax.set_xlabel("streams decoded at once")
    ax.set_ylabel("CPU ms per decoded frame")
    ax.legend(fontsize=7)
    ax.set_title("Reader cost on a 2-core CPU")
    fig.tight_layout()
    fig.savefig(out / "reader_cost.png", dpi=120)
    plt.close(fig)
    return [*paths, out / "reader_cost.png"]


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from fakewatch.benchmarks.face_media import carphone, upscaled

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--frames", type=int, default=90, help="frames per stream per decode row")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    load_before = _load()
    videos = {s: upscaled(carphone(), s, seconds=8.0) for s in ("720p", "1080p")}
    reduce = {"720p": [None, 360], "1080p": [None, 540, 360]}
    jobs = [(s, n, t, mh) for s in videos for n in [int(x) for x in args.streams.split(",")] for t in (0, 1)
            for mh in reduce[s] if t == 1 or mh is None]
    rows = []
    for size, n, t, mh in tqdm(jobs, desc="decode rows", unit="row"):
        rows.append(decode_row(videos[size], size, n, t, mh, args.frames))
        print(json.dumps(rows[-1]), flush=True)
    rows += crop_rows(videos["720p"], "720p", [360])
    rows += crop_rows(videos["1080p"], "1080p", [540, 360])
    doc = {"command": "python -m fakewatch.benchmarks.reader_cost " + " ".join(argv if argv is not None
                                                                              else sys.argv[1:]),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
           "load_before": load_before, "load_after": _load(), "rows": rows}
    for p in write(doc, args.output):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
