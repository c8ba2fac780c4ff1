"""Monitor hub: FAKE episodes -> new/update/end events, UNKNOWN on stale/ended, evidence JPEGs, pruning, clips."""
from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

from fakewatch.runtime.monitor import Monitor, Output
from fakewatch.runtime.pipeline import FrameView
from fakewatch.runtime.snapshots import ClipRecorder, SnapshotStore


class Recording(Output):
    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def state(self, camera, state, score):
        self.calls.append(("state", camera, state))

    def status(self, camera, status, message):
        self.calls.append(("status", camera, status))

    def event(self, event):
        self.calls.append(("event", event))

    def stats(self, stats):
        self.calls.append(("stats", stats))

    def events(self):
        return [c[1] for c in self.calls if c[0] == "event"]

    def of(self, kind, camera="cam"):
        return [c[2] for c in self.calls if c[0] == kind and c[1] == camera]


def image(level: int = 90) -> np.ndarray:
    img = np.full((120, 160, 3), level, np.uint8)
    img[30:90, 50:110] = (200, 160, 40)        # a "face" patch (blue: red evidence boxes stand out)
    return img


def view(state: str, score: float, probs=(0.9,), seq: int = 0, cam: str = "cam") -> FrameView:
    boxes = [(50, 30, 110, 90), (0, 0, 20, 20)][: len(probs)]
    return FrameView(cam, seq, image(), boxes, list(probs), state, score, {"capture": 1.0, "alert": 1.01},
                     time.monotonic())


def rec(type_: str, **kw) -> dict:
    return {"type": type_, "stream": "cam", **kw}


def test_episode_new_update_end_with_snapshots(tmp_path):
    import cv2

    out = Recording()
    store = SnapshotStore(tmp_path / "ev")
    m = Monitor([out], model="m.onnx", snapshots=store, update_delta=0.05, cameras=["cam"]).start()
    assert out.of("state") == ["UNKNOWN"] and out.of("status") == ["connecting"]
    m.emit(rec("source", state="live", message="160x120"))
    m.emit(rec("state", state="REAL", score=0.1))
    m.frame(view("REAL", 0.1, (0.1,)))
    assert out.events() == []
    m.emit(rec("state", state="FAKE", score=0.8))
    m.frame(view("FAKE", 0.8, (0.7, 0.2), seq=1))            # two faces: the first is the most fake one
    m.frame(view("FAKE", 0.82, (0.72,), seq=2))              # +0.02: not meaningful, no update
    m.frame(view("FAKE", 0.9, (0.95,), seq=3))               # +0.25: a better snapshot, an update
    m.emit(rec("state", state="REAL", score=0.2))
    evs = out.events()
    assert [e["type"] for e in evs] == ["new", "update", "end"]
    new, upd, end = (e["after"] for e in evs)
    assert new["id"] == upd["id"] == end["id"] and new["camera"] == "cam" and new["label"] == "fake"
    assert new["top_score"] == pytest.approx(0.7) and new["face_id"] == 0 and new["box"] == [50, 30, 110, 90]
    assert upd["top_score"] == pytest.approx(0.95) and evs[1]["before"]["top_score"] == pytest.approx(0.7)
    assert new["end_time"] is None and end["end_time"] >= end["start_time"] and new["model"] == "m.onnx"
    m.close()                                                  # writes the queued JPEGs
    snap = end["snapshot"]
    assert end["has_snapshot"] and set(snap) == {"frame", "crop"} and new["id"] in snap["frame"]
    frame = cv2.imread(snap["frame"])
    crop = cv2.imread(snap["crop"])
    assert frame.shape == (120, 160, 3) and crop.shape == (60, 60, 3)
    assert frame[30, 80, 2] > 140 and frame[60, 80, 2] < 70      # a red box on the face's edge, not inside
    assert abs(int(crop[30, 30, 0]) - 200) < 12                   # the crop is the face patch (BGR 200,160,40)
    assert store.saved == 2 and store.dropped == 0               # the start and the better one, same files
    assert out.of("state")[-1] == "UNKNOWN" and out.of("status")[-1] == "ended"


def test_stale_and_ended_cameras_drop_their_verdict_and_end_the_episode():
    out = Recording()
    m = Monitor([out], cameras=["cam"]).start()
    m.emit(rec("state", state="FAKE", score=0.9))
    m.frame(view("FAKE", 0.9))
    m.emit(rec("source", state="stale", message="no frame for 3.1 s"))
    m.emit(rec("state", state="UNKNOWN", score=None))         # what the pipeline sends with "stale"
    assert out.of("status")[-1] == "stale" and out.of("state")[-1] == "UNKNOWN"
    assert [e["type"] for e in out.events()] == ["new", "end"]
    m.emit(rec("source", state="live", message="frames again"))
    m.emit(rec("state", state="REAL", score=0.1))
    m.emit(rec("source", state="eof", message="end"))         # a file ended: UNKNOWN, status ended
    assert out.of("status")[-2:] == ["live", "ended"] and out.of("state")[-1] == "UNKNOWN"
    m.close()
    assert out.of("status").count("ended") == 1               # close does not repeat what is already known


def test_stats_interval_and_a_broken_output_does_not_stop_the_others():
    class Broken(Output):
        name = "broken"
        dropped = 3

        def state(self, *a):
            raise RuntimeError("boom")

    t = [0.0]
    out = Recording()
    m = Monitor([Broken(), out], stats_interval_s=10, cameras=["cam"], clock=lambda: t[0]).start()
    m.emit(rec("status", state="REAL", score=0.1, fps=25.0, frames=10, dropped=1, no_face=0, latency_ms={}))
    assert [c for c in out.calls if c[0] == "stats"] == []
    t[0] = 10.5
    m.emit(rec("state", state="FAKE", score=0.9))
    stats = [c[1] for c in out.calls if c[0] == "stats"]
    assert len(stats) == 1 and out.of("state")[-1] == "FAKE"
    s = stats[0]
    assert s["cameras"]["cam"]["fps"] == 25.0 and s["cameras"]["cam"]["state"] == "FAKE"
    assert s["outputs"] == {"broken": {"dropped": 3}, "recording": {"dropped": 0}}
    assert s["service"]["uptime_s"] == 10.5


def test_snapshot_pruning_by_count_and_age(tmp_path):
    d = tmp_path / "ev"
    d.mkdir()
    now = time.time()
    for i in range(6):
        p = d / f"cam-{i}.jpg"
        p.write_bytes(b"x")
        os.utime(p, (now - i * 60, now - i * 60))           # cam-0 newest
    (d / "notes.txt").write_text("kept: not evidence")
    old = d / "cam-old.mp4"
    old.write_bytes(b"x")
    os.utime(old, (now - 9 * 86400, now - 9 * 86400))
    store = SnapshotStore(d, keep=4, max_age_s=7 * 86400)    # prunes on creation
    assert sorted(p.name for p in d.iterdir()) == ["cam-0.jpg", "cam-1.jpg", "cam-2.jpg", "cam-3.jpg", "notes.txt"]
    assert store.prune(force=True) == 0
    with pytest.raises(ValueError, match="quality"):
        SnapshotStore(d, quality=0)


def test_clip_holds_pre_and_post_frames_and_is_bounded(tmp_path):
    import cv2

    t = [100.0]
    clips = ClipRecorder(tmp_path, pre_s=1.0, post_s=1.0, max_bytes=10 * 120 * 160 * 3, clock=lambda: t[0])
    try:
        for i in range(40):                                   # 4 s at 10 fps before the trigger
            t[0] = 100.0 + i / 10
            clips.add(FrameView("cam", i, image(i * 5 % 250), [], [], "REAL", 0.1, {}, t[0]))
        ring = clips._rings["cam"]
        assert len(ring) <= 11                                # pre_s and max_bytes bound the ring
        path = clips.trigger("cam", "123.0-abc")
        for i in range(40, 60):
            t[0] = 100.0 + i / 10
            clips.add(FrameView("cam", i, image(), [], [], "FAKE", 0.9, {}, t[0]))
    finally:
        clips.close()
    assert list(clips.written) == [path]
    cap = cv2.VideoCapture(path)
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert 15 <= n <= 25                                      # ~1 s before + ~1 s after at 10 fps
    assert math.isfinite(os.path.getsize(path)) and os.path.getsize(path) > 0
