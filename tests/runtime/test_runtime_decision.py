"""Rolling decisions: streaming confident strategy == offline, aggregations, hysteresis, no-face rule."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fakewatch.core.metrics import confident_strategy
from fakewatch.runtime.decision import FAKE, REAL, UNKNOWN, DecisionConfig, StreamDecider


def _scores(n, seed=0):
    rng = np.random.default_rng(seed)
    # segments that exercise all three branches: confident fakes, confident reals, mixed
    parts = [rng.uniform(0.85, 1.0, n // 4), rng.uniform(0.0, 0.15, n // 4), rng.uniform(0, 1, n // 4),
             np.where(rng.random(n - 3 * (n // 4)) < 0.6, rng.uniform(0.81, 1, n - 3 * (n // 4)),
                      rng.uniform(0, 1, n - 3 * (n // 4)))]
    return np.concatenate(parts)


def test_offline_confident_strategy_branches():
    assert confident_strategy([0.9] * 12 + [0.1] * 4) == pytest.approx(0.9)           # enough confident fakes
    assert confident_strategy([0.9] * 11 + [0.1] * 4) == pytest.approx((0.9 * 11 + 0.4) / 15)  # 11 is not > 11
    assert confident_strategy([0.1] * 19 + [0.5]) == pytest.approx(0.1)               # reals dominate (> 90 %)
    assert confident_strategy([0.5, 0.6, 0.1]) == pytest.approx(0.4)
    assert math.isnan(confident_strategy([]))


@pytest.mark.parametrize("window", [8, 32, 64])
def test_streaming_confident_equals_offline_frames(window):
    scores = _scores(600, seed=window)
    d = StreamDecider("s", DecisionConfig(window=window, window_unit="frames", aggregation="confident"))
    checked_branches = set()
    for i, s in enumerate(scores):
        d.update(i, i / 25.0, [float(s)])
        win = scores[max(0, i + 1 - window): i + 1]
        want = confident_strategy(win)
        assert d.rolling_score() == pytest.approx(want, abs=1e-12)
        hi = np.count_nonzero(win > 0.8)
        checked_branches.add("fake" if hi > len(win) // 2.5 and hi > 11 else
                             "real" if np.count_nonzero(win < 0.2) > 0.9 * len(win) else "mean")
    # every branch of the strategy was exercised (a window of 8 can never hold more than 11 confident fakes)
    assert checked_branches == ({"real", "mean"} if window == 8 else {"fake", "real", "mean"})


def test_streaming_confident_equals_offline_seconds_with_gaps_and_resum(monkeypatch):
    from fakewatch.runtime import decision

    monkeypatch.setattr(decision._RunningConfident, "RESUM_EVERY", 50)   # exercise the periodic re-summing
    rng = np.random.default_rng(3)
    scores = _scores(500, seed=3)
    ts = np.cumsum(rng.uniform(0.01, 0.08, len(scores)))
    d = StreamDecider("s", DecisionConfig(window=1.5, window_unit="s", aggregation="confident"))
    for i, (t, s) in enumerate(zip(ts, scores)):
        d.update(i, float(t), [float(s)])
        sel = scores[(ts > t - 1.5) & (ts <= t)]
        assert d.rolling_score() == pytest.approx(confident_strategy(sel), abs=1e-12)


def test_max_over_faces_and_mean_and_ema():
    d = StreamDecider("s", DecisionConfig(window=3, window_unit="frames", aggregation="mean"))
    for i, faces in enumerate([[0.1, 0.9], [0.2], [0.3, 0.0, 0.4], [0.5]]):
        dec = d.update(i, float(i), faces)
    assert dec.frame_score == 0.5 and dec.faces == 1
    assert d.rolling_score() == pytest.approx((0.2 + 0.4 + 0.5) / 3)
    e = StreamDecider("s", DecisionConfig(window=3, window_unit="frames", aggregation="ema"))   # alpha = 0.5
    for i, s in enumerate([1.0, 0.0, 0.0]):
        e.update(i, float(i), [s])
    assert e.rolling_score() == pytest.approx(0.25)


def run(d, seq_scores, fps=10.0):
    out = []
    for i, s in enumerate(seq_scores):
        dec = d.update(i, i / fps, [] if s is None else [s])
        out.append(dec)
    return out


def test_hysteresis_enter_leave_min_duration():
    cfg = DecisionConfig(window=3, window_unit="frames", aggregation="mean", enter=0.7, leave=0.3,
                         min_duration_s=0.5, min_scores=3)
    d = StreamDecider("s", cfg)
    scores = [0.1] * 10 + [0.95] * 20 + [0.5] * 10 + [0.05] * 20
    decs = run(d, scores)
    changes = [(x.seq, x.previous, x.state) for x in decs if x.changed]
    # warm-up: UNKNOWN until 3 scored frames, then REAL
    assert changes[0] == (2, UNKNOWN, REAL)
    # the window mean reaches 0.7 at frame 11 ((0.1+0.95+0.95)/3=0.67 at 11? no: 12), must hold 0.5 s = 5 frames
    fake_at = next(s for s, _p, st in changes if st == FAKE)
    first_high = next(i for i, x in enumerate(decs) if x.score >= 0.7)
    assert fake_at == first_high + 5
    # 0.5 is inside the hysteresis band: stays FAKE; leaves only after scores < 0.3 held 0.5 s
    real_at = next(s for s, p, st in changes if p == FAKE)
    first_low = next(i for i, x in enumerate(decs) if i > fake_at and x.score < 0.3)
    assert first_low >= 40 and real_at == first_low + 5
    assert len(changes) == 3


def test_short_spike_does_not_flap():
    cfg = DecisionConfig(window=2, window_unit="frames", aggregation="mean", enter=0.6, leave=0.4,
                         min_duration_s=0.5, min_scores=2)
    decs = run(StreamDecider("s", cfg), [0.1] * 10 + [0.99] * 4 + [0.1] * 10)
    assert all(x.state != FAKE for x in decs)


def test_no_face_rule_goes_unknown_and_ts_reset():
    cfg = DecisionConfig(window=10, window_unit="frames", aggregation="mean", min_scores=3, min_face_fraction=0.5)
    d = StreamDecider("s", cfg)
    decs = run(d, [0.1] * 10 + [None] * 6)
    assert decs[9].state == REAL
    assert decs[-1].state == UNKNOWN and decs[-1].frame_score is None     # 4 scored of 10 < 50 %
    assert d.no_face_frames == 6
    dec = d.update(99, 0.0, [0.9])         # stream time went backwards: new window
    assert dec.window_frames == 1 and dec.state == UNKNOWN


def test_config_validation():
    with pytest.raises(ValueError, match="leave < enter"):
        DecisionConfig(enter=0.4, leave=0.6)
    with pytest.raises(ValueError, match="aggregation"):
        DecisionConfig(aggregation="median")
    c = DecisionConfig.around(0.5, 0.2)
    assert (c.enter, c.leave) == (0.7, 0.3)
