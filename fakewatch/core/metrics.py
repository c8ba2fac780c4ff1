"""Scores and detection metrics shared by training, export fidelity reports and the runtime decider.

numpy only. Labels: 1 = fake (positive), 0 = real. Scores: P(fake) (any monotone score works for AUC/AP/EER).
:func:`sigmoid` turns the model's fake logit into P(fake). :func:`confident_strategy` is the DFDC winner's offline
aggregation; the runtime decider streams the same rule, so a video AUC here means what a stream's rolling score
means there. Frame AUC, AP, EER, accuracy, video-level AUC and threshold choice follow.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np


def confident_strategy(pred: Sequence[float], t: float = 0.8, low: float = 0.2, min_fakes: int = 11,
                       fake_div: float = 2.5, real_frac: float = 0.9) -> float:
    """The DFDC winner's offline aggregation of per-frame fake probabilities (NaN for an empty list)."""
    pred = np.asarray(pred, np.float64)
    sz = len(pred)
    if sz == 0:
        return float("nan")
    fakes = np.count_nonzero(pred > t)
    if fakes > sz // fake_div and fakes > min_fakes:
        return float(np.mean(pred[pred > t]))
    if np.count_nonzero(pred < low) > real_frac * sz:
        return float(np.mean(pred[pred < low]))
    return float(np.mean(pred))


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def _check(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"metrics: {y.size} labels but {s.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("metrics: labels must be 0 (real) or 1 (fake)")
    return y, s


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties). NaN with one class only."""
    y, s = _check(labels, scores)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average ranks over tied groups
    _, start, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) with thresholds descending; a sample is positive when score >= threshold."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s) - 1]
    tps = np.cumsum(y_sorted)[distinct]
    fps = (distinct + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thr = np.r_[np.inf, s_sorted[distinct]]
    return fpr, tpr, thr


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """AP = sum over recall steps of precision (the step-wise definition scikit-learn uses)."""
    y, s = _check(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s) - 1]
    tps = np.cumsum(y_sorted)[distinct]
    precision = tps / (distinct + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def eer(labels: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """Equal error rate and its threshold: where the false-positive rate meets the false-negative rate.

    The ROC is interpolated linearly between its points; the threshold is the score at the crossing point
    (interpolated between the neighbouring thresholds).
    """
    y, _ = _check(labels, scores)
    if y.sum() == 0 or (1 - y).sum() == 0:
        return float("nan"), float("nan")
    fpr, tpr, thr = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fnr - fpr                     # decreasing from 1 to <= 0
    i = int(np.nonzero(diff <= 0)[0][0])
    if i == 0 or diff[i] == 0:
        # the rates cross exactly at a ROC vertex: any threshold in (next lower score, thr[i]] gives them, so take
        # the middle of that gap (max margin; e.g. midway between the top real and the lowest fake when separable)
        t = thr[i] if np.isfinite(thr[i]) else thr[min(i + 1, len(thr) - 1)]
        if np.isfinite(thr[i]) and i + 1 < len(thr):
            t = 0.5 * (thr[i] + thr[i + 1])
        return float(fpr[i]), float(t)
    w = diff[i - 1] / (diff[i - 1] - diff[i])          # fraction of the way from point i-1 to point i
    rate = float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))
    t_hi = thr[i - 1] if np.isfinite(thr[i - 1]) else thr[i]
    return rate, float(t_hi + w * (thr[i] - t_hi))


def threshold_at_fpr(labels: Sequence[int], scores: Sequence[float], target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate on these scores is <= ``target_fpr``."""
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target FPR must be in [0, 1), got {target_fpr}")
    fpr, _tpr, thr = roc_curve(labels, scores)
    ok = np.nonzero(fpr <= target_fpr)[0]
    t = thr[ok[-1]]
    return float(t) if np.isfinite(t) else float(np.nextafter(np.max(scores), np.inf))


def accuracy(labels: Sequence[int], scores: Sequence[float], threshold: float) -> float:
    y, s = _check(labels, scores)
    return float(np.mean((s >= threshold).astype(np.int64) == y)) if len(y) else float("nan")


def video_scores(video_ids: Sequence[str], labels: Sequence[int], scores: Sequence[float],
                 aggregate: str = "confident") -> tuple[list[str], np.ndarray, np.ndarray]:
    """Aggregate frame scores per video (runtime's confident strategy, or mean) -> (ids, labels, scores)."""
    y, s = _check(labels, scores)
    ids = np.asarray(list(video_ids), dtype=object)
    if len(ids) != len(y):
        raise ValueError(f"metrics: {len(ids)} video ids but {len(y)} scores")
    if aggregate == "confident":
        agg = confident_strategy
    elif aggregate == "mean":
        def agg(p):
            return float(np.mean(p))
    else:
        raise ValueError(f"unknown video aggregation {aggregate!r}; use 'confident' or 'mean'")
    out_ids, out_y, out_s = [], [], []
    for vid in dict.fromkeys(ids.tolist()):
        sel = ids == vid
        out_ids.append(str(vid))
        out_y.append(int(round(float(y[sel].mean()))))   # a video's frames share its label
        out_s.append(agg(s[sel]))
    return out_ids, np.asarray(out_y), np.asarray(out_s, np.float64)


@dataclass
class Metrics:
    n_frames: int
    n_fake: int
    frame_auc: float
    ap: float
    eer: float
    eer_threshold: float
    threshold: float
    threshold_rule: str
    accuracy: float
    tpr: float
    fpr: float
    n_videos: int
    video_auc: float
    video_aggregation: str
    loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) and np.isfinite(v) else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        return (f"AUC {self.frame_auc:.4f}  AP {self.ap:.4f}  EER {self.eer:.4f}  acc {self.accuracy:.4f} "
                f"@ {self.threshold:.3f} ({self.threshold_rule})  video AUC {self.video_auc:.4f} "
                f"({self.n_videos} videos)" + (f"  loss {self.loss:.4f}" if self.loss is not None else ""))


def compute_metrics(labels: Sequence[int], scores: Sequence[float], video_ids: Sequence[str] | None = None, *,
                    target_fpr: float | None = None, threshold: float | None = None,
                    aggregate: str = "confident", loss: float | None = None) -> Metrics:
    """All validation metrics. The threshold is ``threshold`` when given (evaluating a trained model), else the
    EER point, or the lowest threshold reaching ``target_fpr`` when given."""
    y, s = _check(labels, scores)
    rate, t_eer = eer(y, s)
    if threshold is not None:
        t, rule = float(threshold), "given"
    elif target_fpr is not None:
        t, rule = threshold_at_fpr(y, s, target_fpr), f"fpr<={target_fpr:g}"
    else:
        t, rule = t_eer, "eer"
    if not np.isfinite(t):
        t, rule = 0.5, "default (one class only)"
    t = float(min(1.0, max(0.0, t)))
    pred = s >= t
    tpr = float(pred[y == 1].mean()) if (y == 1).any() else float("nan")
    fpr = float(pred[y == 0].mean()) if (y == 0).any() else float("nan")
    if video_ids is None:
        video_ids = [str(i) for i in range(len(y))]
    vids, vy, vs = video_scores(video_ids, y, s, aggregate)
    return Metrics(n_frames=len(y), n_fake=int(y.sum()), frame_auc=roc_auc(y, s), ap=average_precision(y, s),
                   eer=rate, eer_threshold=t_eer, threshold=t, threshold_rule=rule, accuracy=accuracy(y, s, t),
                   tpr=tpr, fpr=fpr, n_videos=len(vids), video_auc=roc_auc(vy, vs), video_aggregation=aggregate,
                   loss=loss)
