"""The load-driven detection cadence (runtime/detect_cadence.py) and its use by the tracker and the ROI stage."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.runtime.detect_cadence import CadenceConfig, DetectCadence
from fakewatch.runtime.decode_threads import auto_decode_threads
from fakewatch.runtime.tracking import FaceTracks, TrackConfig


def test_losses_stretch_the_cadence_step_by_step_up_to_the_cap():
    c = DetectCadence(CadenceConfig(base=3, max_every=5, window_s=1.0))
    t = 0.0
    ks = []
    for _ in range(5):                     # 10 % of frames lost every window
        c.observe(t, 90, 10)
        t += 1.0
        ks.append(c.observe(t, 0, 0))
    assert ks == [4, 5, 5, 5, 5]


def test_calm_windows_bring_it_back_and_mixed_windows_hold_it():
    c = DetectCadence(CadenceConfig(base=2, max_every=4, window_s=1.0, calm_windows=2))
    c.k = 4
    t = 0.0

    def window(taken, lost):
        nonlocal t
        c.observe(t, taken, lost)
        t += 1.0
        return c.observe(t, 0, 0)

    assert window(100, 0) == 4             # one calm window: not yet
    assert window(100, 0) == 3             # two in a row: one step back
    assert window(99, 1) == 3              # 1 % lost: between the thresholds, hold (and reset the calm count)
    assert window(100, 0) == 3
    assert window(100, 0) == 2
    assert window(100, 0) == 2             # never below base
    assert dict(c.frames_at) == {4: 200, 3: 299, 2: 100}   # frames taken, counted at the k they ran at


def test_lost_frames_come_from_sequence_gaps_per_stream():
    c = DetectCadence()
    assert c.lost_before("a", 0) == 0
    assert c.lost_before("a", 1) == 0
    assert c.lost_before("a", 5) == 3
    assert c.lost_before("b", 7) == 0      # first frame of another stream: no gap known
    assert c.lost_before("a", 2) == 0      # sequence restarted (reconnect): not a loss
    c.forget("b")
    assert c.lost_before("b", 20) == 0


@pytest.mark.parametrize("kw,match", [({"base": 0}, "detect_every"), ({"base": 4, "max_every": 3}, "fixed cadence"),
                                      ({"window_s": 0}, "window_s"), ({"lower_below": 0.5}, "lower_below")])
def test_bad_cadence_config_is_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        CadenceConfig(**kw)


def test_tracker_detects_at_the_stretched_cadence():
    tr = FaceTracks(TrackConfig(detect_every=2))
    shape = (480, 640)
    runs = []
    for i in range(24):
        ts = i / 30
        if tr.due("s", shape, at_least=6 if i >= 12 else 1):
            tr.update("s", shape, ts, [(100.0, 100.0, 60.0, 60.0, 0.9)])
            runs.append(i)
        else:
            tr.predict("s", shape, ts)
    assert runs == [0, 2, 4, 6, 8, 10, 16, 22]


def test_auto_decode_threads():
    assert auto_decode_threads(1, cpus=2) == 0
    assert auto_decode_threads(2, cpus=2) == 1
    assert auto_decode_threads(8, cpus=2) == 1
    assert auto_decode_threads(4, cpus=16) == 0


def test_roi_stage_stretches_detection_when_frames_are_lost():
    """The stage counts sequence gaps as losses and detects less often; frames_at records the cadence."""
    from types import SimpleNamespace

    from fakewatch.runtime.roi_stage import RoiStage
    from fakewatch.streams.frame import Frame

    class Det:
        calls = 0

        def detect_batch(self, images):
            Det.calls += len(images)
            return [[(10.0, 10.0, 40.0, 40.0, 0.9)] for _ in images]

    t = [0.0]
    spec = SimpleNamespace(roi="face", input_size=(32, 32))
    stage = RoiStage(group=None, spec=spec, tracks=FaceTracks(TrackConfig(detect_every=2)), detector=Det(),
                     live={"s": False}, on_host=False, clock=lambda: t[0],
                     cadence=DetectCadence(CadenceConfig(base=2, max_every=6, window_s=0.5)))
    img = np.zeros((120, 160, 3), np.uint8)
    seq = 0
    due_at = []
    for i in range(60):
        t[0] = i / 15
        frame = Frame("s", seq, t[0], img, source_ts=t[0])
        seq += 2                              # every other frame was replaced in the reader: 50 % lost
        before = Det.calls
        stage.prepare([frame])
        if Det.calls > before:
            due_at.append(i)
    assert stage.cadence.k == 6
    gaps = np.diff(due_at)
    assert gaps[0] == 2 and gaps[-1] == 6   # started at the base cadence, ended at the cap
    assert stage.stats.frames_at[2] > 0 and stage.stats.frames_at[6] > 0
