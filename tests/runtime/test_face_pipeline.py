"""The watch pipeline with a face model: BlazeFace + tracking in the ROI stage thread, track ids in the records,
detection of the next frames overlapping inference of the current batch."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from fakewatch.runtime.alerts import ALERT_SCHEMA
from fakewatch.runtime.backends import load_runner
from fakewatch.runtime.pipeline import DEFAULT_DETECT_EVERY, Pipeline, WatchConfig
from fakewatch.streams import open_source

jsonschema = pytest.importorskip("jsonschema")
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "runtime" / "assets" / "demo" / "demo_model.onnx"


@pytest.fixture(scope="module")
def clip() -> str:
    from fakewatch.streams.demo import find_clip

    return str(find_clip())


def test_demo_model_on_carphone_scores_every_frame_with_one_track(clip, tmp_path):
    from fakewatch.cli import main

    out = tmp_path / "alerts.jsonl"
    rc = main(["watch", clip, "--model", str(DEMO), "--json", str(out), "--frames", "--status-interval", "0",
               "--no-live", "--no-pace"])
    assert rc == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    for r in recs:
        jsonschema.validate(r, ALERT_SCHEMA)
    frames = [r for r in recs if r["type"] == "frame"]
    assert len(frames) == 120
    with_face = [r for r in frames if r["faces"] == 1]
    assert len(with_face) >= 0.95 * 120                        # the goal's recall, through the whole pipeline
    assert {t["id"] for r in with_face for t in r["tracks"]} == {1}   # one man, one track id all clip long
    for r in with_face:
        (t,) = r["tracks"]
        assert t["p_fake"] == pytest.approx(r["frame_score"], abs=1e-4) and t["box"][2] > 20


def test_run_summary_reports_detector_cost_and_k(clip):
    runner = load_runner(DEMO)
    res = Pipeline([open_source(clip, pace=False)], runner, WatchConfig(status_interval_s=0)).run()
    roi = res.roi
    assert roi["detector"].startswith("blazeface_full on onnxruntime") and roi["detect_every"] == DEFAULT_DETECT_EVERY
    assert roi["frames"] == 120 and 120 / DEFAULT_DETECT_EVERY <= roi["detector_frames"] < 120 / 2
    assert roi["detector_ms_per_frame"] > 0
    assert roi["detector_share"] == pytest.approx(roi["detector_frames"] / 120, abs=1e-4)   # rounded to 4 places


class GatedRunner:
    """Wraps a runner: the first inference waits until the detector has been called again (for later frames).

    If detection and inference ran one after the other in one thread, that second call could never happen while the
    first inference waits, and ``overlapped`` would stay False (the wait gives up after 20 s)."""

    def __init__(self, inner, later_detection: threading.Event):
        self.inner, self.later = inner, later_detection
        self.overlapped: bool | None = None
        self.threads: set[str] = set()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        if self.overlapped is None:
            self.overlapped = self.later.wait(20.0)
        return self.inner.infer(batch)


class CountingDetector:
    def __init__(self, later: threading.Event):
        self.calls, self.later, self.threads = 0, later, set()

    def detect(self, image):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.calls >= 2:
            self.later.set()
        h, w = image.shape[:2]
        return [(w / 4, h / 4, w / 2, h / 2, 0.9)]


def test_detection_of_next_frames_overlaps_inference(clip):
    later = threading.Event()
    runner = GatedRunner(load_runner(DEMO), later)
    pipe = Pipeline([open_source(clip, pace=False)], runner,
                    WatchConfig(status_interval_s=0, detect_every=1, batch=1, face_detector="haar"))
    det = CountingDetector(later)
    pipe.detector = det
    res = pipe.run()
    assert runner.overlapped is True
    assert det.threads == {"fakewatch-roi"} and "fakewatch-roi" not in runner.threads
    assert res.streams[next(iter(res.streams))]["frames"] > 0


def test_detector_error_fails_the_run_with_its_message(clip):
    class Broken:
        def detect(self, image):
            raise RuntimeError("detector exploded")

    pipe = Pipeline([open_source(clip, pace=False)], load_runner(DEMO), WatchConfig(status_interval_s=0,
                                                                                     face_detector="haar"))
    pipe.detector = Broken()
    with pytest.raises(RuntimeError, match="detector exploded"):
        pipe.run()
