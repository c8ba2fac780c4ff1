"""Face tracks: detect every K, constant-velocity prediction between detections, stable ids, coasting, crops."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.runtime.tracking import FaceTracks, TrackConfig

SHAPE = (480, 640)


def face_at(t: float, vx: float = 100.0, x0: float = 100.0):
    """A 60x60 face moving right at vx px/s."""
    return (x0 + vx * t, 200.0, 60.0, 60.0, 0.9)


def run(tracks: FaceTracks, faces_at, n: int, fps: float = 30.0, sid: str = "cam"):
    out = []
    for i in range(n):
        ts = i / fps
        if tracks.due(sid, SHAPE):
            out.append((tracks.update(sid, SHAPE, ts, faces_at(ts)), True))
        else:
            out.append((tracks.predict(sid, SHAPE, ts), False))
    return out


def test_detects_every_k_frames_and_follows_a_moving_head():
    tr = FaceTracks(TrackConfig(detect_every=5, smooth=1.0))
    res = run(tr, lambda t: [face_at(t)], 30)
    assert [d for _t, d in res] == [i % 5 == 0 for i in range(30)]
    assert tr.detector_share == pytest.approx(1 / 5)
    assert {t[0].id for t, _d in res} == {1}                    # one head, one id throughout
    # after two detections the velocity is known: predicted boxes sit where the head really is
    for i in range(6, 30):
        assert res[i][0][0].box[0] == pytest.approx(face_at(i / 30)[0], abs=1.0)
    assert res[29][0][0].velocity[0] == pytest.approx(100.0, rel=0.02)


def test_a_fast_head_keeps_its_id_before_its_velocity_is_known():
    """300 px/s with K=5: the second detection is 50 px from the first box (IoU 0.09), matched by centre distance."""
    tr = FaceTracks(TrackConfig(detect_every=5, smooth=1.0))
    res = run(tr, lambda t: [face_at(t, vx=300.0)], 30)
    assert {t[0].id for t, _d in res} == {1} and all(len(t) == 1 for t, _d in res)
    for i in range(6, 30):     # from the second detection on, the prediction keeps up
        assert res[i][0][0].box[0] == pytest.approx(face_at(i / 30, vx=300.0)[0], abs=1.0)
    # a holding (zero-velocity) tracker would trail by up to 4 frames x 10 px = 40 px here


def test_two_faces_keep_their_ids_and_a_new_face_gets_a_new_one():
    tr = FaceTracks(TrackConfig(detect_every=3))
    two = lambda t: [face_at(t, x0=100), face_at(t, vx=-50, x0=400)]   # noqa: E731
    res = run(tr, two, 12)
    ids = [sorted(t.id for t in tracks) for tracks, _d in res]
    assert all(i == [1, 2] for i in ids)
    by_id = {t.id: t for t in res[-1][0]}
    assert by_id[1].box[0] < by_id[2].box[0]                    # id 1 stays the left face
    out = tr.update("cam", SHAPE, 12 / 30, two(12 / 30) + [(300.0, 20.0, 40.0, 40.0, 0.8)])
    assert sorted(t.id for t in out) == [1, 2, 3]


def test_missed_detection_coasts_retries_next_frame_then_drops():
    tr = FaceTracks(TrackConfig(detect_every=5, hold_s=0.2))
    script = {0: [face_at(0)]}
    res = run(tr, lambda t: script.get(round(t * 30), []), 12)
    # frame 5 misses: the track coasts and the detector is retried on every following frame
    assert [d for _t, d in res][:8] == [True, False, False, False, False, True, True, True]
    assert res[5][0] and res[6][0]                               # held within 0.2 s of the last detection
    assert res[7][0] == []                                       # 7/30 s > 0.2 s: dropped (no-face rule)
    assert tr.update("cam", SHAPE, 0.5, [face_at(0.5)])[0].id == 2   # a face after a gap is a new track


def test_streams_are_independent_and_resolution_change_resets():
    tr = FaceTracks(TrackConfig(detect_every=4))
    assert tr.update("a", SHAPE, 0.0, [face_at(0)])[0].id == 1
    assert tr.update("b", SHAPE, 0.0, [face_at(0)])[0].id == 1   # ids count per stream
    assert tr.due("a", (720, 1280))                              # new size: old tracks are meaningless
    assert tr.predict("a", (720, 1280), 0.03) == []
    assert tr.update("a", (720, 1280), 0.06, [face_at(0)])[0].id == 2


def test_crops_follow_the_contract_margin_and_stay_inside_the_frame():
    tr = FaceTracks(TrackConfig(roi_margin=0.5))
    t = tr.update("a", SHAPE, 0.0, [(600.0, 10.0, 40.0, 40.0, 0.9)])
    (x0, y0, x1, y1), = tr.crops(t, SHAPE)
    assert (x0, y0, x1, y1) == (580, 0, 640, 70)   # 40 px face, +50 % each side (80 px square), clipped
    assert len(tr.update("a", SHAPE, 0.1, [face_at(0.1, x0=x) for x in range(0, 600, 70)])) == 4   # max_faces


def test_config_is_validated():
    for bad in ({"detect_every": 0}, {"hold_s": -1}, {"smooth": 0}, {"match_iou": 1.5}, {"max_faces": 0}):
        with pytest.raises(ValueError):
            TrackConfig(**bad)
    assert np.isfinite(FaceTracks().detector_share)
