"""Metrics against values worked out by hand (and cross-checked with scikit-learn's definitions)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fakewatch.core.metrics import (
    accuracy,
    average_precision,
    compute_metrics,
    eer,
    roc_auc,
    threshold_at_fpr,
    video_scores,
)

Y = [0, 0, 1, 1]
S = [0.1, 0.4, 0.35, 0.8]


def test_auc_known_values_and_ties():
    assert roc_auc(Y, S) == pytest.approx(0.75)
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    rng = np.random.default_rng(0)   # random scores: AUC near 0.5, and equal to the pairwise definition
    y = rng.integers(0, 2, 300)
    s = rng.random(300).round(2)
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert roc_auc(y, s) == pytest.approx(pairwise)


def test_ap_eer_accuracy_known_values():
    assert average_precision(Y, S) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    rate, t = eer(Y, S)
    assert rate == pytest.approx(0.5) and t == pytest.approx(0.375)   # middle of the (0.35, 0.4] gap
    rate, t = eer([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9])
    assert rate == 0.0 and t == pytest.approx(0.45)   # midway between top real 0.2 and lowest fake 0.7
    assert accuracy(Y, S, 0.3) == pytest.approx(0.75)
    # target FPR 0: the threshold must reject every real
    t0 = threshold_at_fpr(Y, S, 0.0)
    assert t0 == pytest.approx(0.8)
    assert threshold_at_fpr(Y, S, 0.5) == pytest.approx(0.35)


def test_eer_interpolates_between_roc_points():
    # 10 reals evenly 0..0.9, 10 fakes evenly 0.05..0.95 shifted: EER is where FPR == FNR
    y = [0] * 10 + [1] * 10
    s = list(np.linspace(0, 0.9, 10)) + list(np.linspace(0.45, 1.35, 10))
    rate, t = eer(y, s)
    assert 0.2 <= rate <= 0.3
    assert accuracy(y, s, t) == pytest.approx(1 - rate, abs=0.06)


def test_video_scores_use_the_runtime_aggregation():
    ids = ["a"] * 20 + ["b"] * 20
    labels = [1] * 20 + [0] * 20
    scores = [0.95] * 13 + [0.1] * 7 + [0.05] * 20
    vid, vy, vs = video_scores(ids, labels, scores, "confident")
    assert vid == ["a", "b"] and list(vy) == [1, 0]
    assert vs[0] == pytest.approx(0.95)        # enough confident fakes -> their mean (not the plain mean 0.65)
    assert vs[1] == pytest.approx(0.05)
    _, _, vm = video_scores(ids, labels, scores, "mean")
    assert vm[0] == pytest.approx((13 * 0.95 + 7 * 0.1) / 20)


def test_compute_metrics_picks_the_threshold():
    m = compute_metrics(Y, S, ["v1", "v1", "v2", "v2"])
    assert m.threshold_rule == "eer" and m.threshold == pytest.approx(0.375)
    assert m.frame_auc == pytest.approx(0.75) and m.n_videos == 2 and m.n_fake == 2
    assert m.accuracy == pytest.approx(0.5) and m.tpr == 0.5 and m.fpr == 0.5
    m2 = compute_metrics(Y, S, target_fpr=0.0)
    assert m2.threshold == pytest.approx(0.8) and m2.fpr == 0.0
    m3 = compute_metrics(Y, S, threshold=0.3)
    assert m3.threshold_rule == "given" and m3.accuracy == pytest.approx(0.75)
    assert set(m.to_dict()) >= {"frame_auc", "ap", "eer", "video_auc", "threshold"}
    with pytest.raises(ValueError):
        roc_auc([0, 2], [0.1, 0.2])
