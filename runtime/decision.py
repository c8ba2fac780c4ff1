"""Per-stream rolling Real/Fake decision with hysteresis.

Per frame the model gives P(fake) per face; the frame's score is the **max over its faces** (one fake face makes a
fake frame). A rolling window (last N frames, or last S seconds of stream time) aggregates frame scores by

* ``mean``       - plain mean of the window's scores;
* ``ema``        - exponential moving average (alpha = 2/(N+1) per frame, or time constant S/2 for seconds);
* ``confident``  - a streaming form of the DFDC winner's *confident strategy* (selimsef/dfdc_deepfake_challenge):
  the mean of confident fake scores (> 0.8) if there are enough of them (more than ``len // 2.5`` and more than 11),
  else the mean of confident real scores (< 0.2) if they are more than 90 % of the window, else the plain mean.
  :func:`fakewatch.core.metrics.confident_strategy` is the offline original; the streaming version keeps running counts
  and sums and returns the same value on the same window (tested).

States: UNKNOWN (warming up, or too few scored frames - the no-face rule), REAL, FAKE. Hysteresis: a stream enters
FAKE when the rolling score reaches ``enter`` and leaves it when the score falls below ``leave`` (< enter); either
change must hold for ``min_duration_s`` of stream time before it is reported, so alerts do not flap. Leaving or
entering UNKNOWN is immediate.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

UNKNOWN, REAL, FAKE = "UNKNOWN", "REAL", "FAKE"
STATES = (UNKNOWN, REAL, FAKE)
AGGREGATIONS = ("mean", "ema", "confident")
WINDOW_UNITS = ("frames", "s")


@dataclass(frozen=True)
class DecisionConfig:
    window: float = 2.0                 # length of the rolling window, in ``window_unit``
    window_unit: str = "s"              # "s" (stream seconds) or "frames"
    aggregation: str = "confident"
    enter: float = 0.6                  # rolling P(fake) at/above which a stream becomes FAKE
    leave: float = 0.4                  # rolling P(fake) below which a FAKE stream becomes REAL again
    min_duration_s: float = 1.0         # a REAL<->FAKE change must hold this long (stream time)
    min_scores: int = 3                 # scored frames needed in the window before leaving UNKNOWN
    min_face_fraction: float = 0.5      # below this share of scored frames in the window -> UNKNOWN (no-face rule)
    ema_alpha: float | None = None      # None: derived from the window
    confident_t: float = 0.8
    confident_low: float = 0.2
    confident_min_fakes: int = 11

    def __post_init__(self) -> None:
        problems = []
        if self.window_unit not in WINDOW_UNITS:
            problems.append(f"window unit must be one of {WINDOW_UNITS}, got {self.window_unit!r}")
        if not self.window > 0:
            problems.append(f"window must be > 0, got {self.window}")
        if self.aggregation not in AGGREGATIONS:
            problems.append(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if not 0.0 <= self.leave < self.enter <= 1.0:
            problems.append(f"need 0 <= leave < enter <= 1, got leave={self.leave} enter={self.enter}")
        if self.min_duration_s < 0 or self.min_scores < 1 or not 0 <= self.min_face_fraction <= 1:
            problems.append("min_duration_s >= 0, min_scores >= 1 and min_face_fraction in [0, 1] are required")
        if self.ema_alpha is not None and not 0 < self.ema_alpha <= 1:
            problems.append(f"ema_alpha must be in (0, 1], got {self.ema_alpha}")
        if problems:
            raise ValueError("invalid decision settings: " + "; ".join(problems))

    @classmethod
    def around(cls, threshold: float, band: float = 0.1, **kw: Any) -> "DecisionConfig":
        """enter/leave = the model's threshold +- band (clipped), the default hysteresis."""
        return cls(enter=min(1.0, threshold + band), leave=max(0.0, threshold - band), **kw)


class _RunningConfident:
    """O(1) add/remove of window scores with the counts/sums the confident strategy needs."""

    RESUM_EVERY = 4096   # recompute sums from the window now and then so float drift stays bounded

    def __init__(self, cfg: DecisionConfig) -> None:
        self.cfg = cfg
        self.n = self.n_hi = self.n_lo = 0
        self.s = self.s_hi = self.s_lo = 0.0
        self._ops = 0

    def _apply(self, x: float, sign: int) -> None:
        self.n += sign
        self.s += sign * x
        if x > self.cfg.confident_t:
            self.n_hi += sign
            self.s_hi += sign * x
        if x < self.cfg.confident_low:
            self.n_lo += sign
            self.s_lo += sign * x

    def add(self, x: float) -> None:
        self._apply(x, +1)

    def remove(self, x: float) -> None:
        self._apply(x, -1)
        self._ops += 1

    def needs_resum(self) -> bool:
        return self._ops >= self.RESUM_EVERY

    def resum(self, scores: Sequence[float]) -> None:
        self.n = self.n_hi = self.n_lo = 0
        self.s = self.s_hi = self.s_lo = 0.0
        for x in scores:
            self._apply(x, +1)
        self._ops = 0

    def mean(self) -> float:
        return self.s / self.n if self.n else float("nan")

    def confident(self) -> float:
        c = self.cfg
        if self.n == 0:
            return float("nan")
        if self.n_hi > self.n // 2.5 and self.n_hi > c.confident_min_fakes:
            return self.s_hi / self.n_hi
        if self.n_lo > 0.9 * self.n:
            return self.s_lo / self.n_lo
        return self.s / self.n


@dataclass
class Decision:
    stream: str
    seq: int
    ts: float                        # stream time of the frame
    state: str
    previous: str
    score: float                     # rolling P(fake); NaN while nothing is scored
    frame_score: float | None        # this frame's max-over-faces P(fake); None = no face
    faces: int
    scored: int                      # scored frames in the window
    window_frames: int               # frames in the window
    changed: bool
    truth: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class StreamDecider:
    """Rolling window + aggregation + hysteresis for one stream. Feed frames in stream order."""

    def __init__(self, stream: str, cfg: DecisionConfig) -> None:
        self.stream = stream
        self.cfg = cfg
        self.state = UNKNOWN
        self._win: deque[tuple[float, float | None]] = deque()
        self._run = _RunningConfident(cfg)
        self._ema: float | None = None
        self._last_ts: float | None = None
        self._pending: tuple[str, float] | None = None   # (target state, since ts)
        self.frames = self.no_face_frames = 0
        self.last: Decision | None = None

    # ---------------------------------------------------------------- window
    def _reset(self) -> None:
        self._win.clear()
        self._run = _RunningConfident(self.cfg)
        self._ema = None
        self._pending = None

    def forget(self) -> str:
        """The stream stopped delivering (stale, reconnecting): drop the window and go UNKNOWN, so an old verdict
        is never shown as current. Returns the state it had."""
        previous, self.state = self.state, UNKNOWN
        self._reset()
        self._last_ts = None
        return previous

    def _push(self, ts: float, score: float | None) -> None:
        self._win.append((ts, score))
        if score is not None:
            self._run.add(score)
        c = self.cfg
        while self._win and ((c.window_unit == "frames" and len(self._win) > c.window)
                             or (c.window_unit == "s" and self._win[0][0] <= ts - c.window)):
            _t, old = self._win.popleft()
            if old is not None:
                self._run.remove(old)
        if self._run.needs_resum():
            self._run.resum([s for _t, s in self._win if s is not None])

    def _update_ema(self, ts: float, score: float | None) -> None:
        if score is None:
            return
        c = self.cfg
        if self._ema is None or self._run.n <= 1:
            self._ema = score
            return
        if c.ema_alpha is not None:
            alpha = c.ema_alpha
        elif c.window_unit == "frames":
            alpha = 2.0 / (c.window + 1.0)
        else:
            dt = max(0.0, ts - (self._last_ts if self._last_ts is not None else ts))
            alpha = 1.0 - math.exp(-dt / (c.window / 2.0))
        self._ema += alpha * (score - self._ema)

    def rolling_score(self) -> float:
        agg = self.cfg.aggregation
        if self._run.n == 0:
            return float("nan")
        if agg == "mean":
            return self._run.mean()
        if agg == "ema":
            return float(self._ema) if self._ema is not None else float("nan")
        return self._run.confident()

    # ---------------------------------------------------------------- update
    def update(self, seq: int, ts: float, face_probs: Sequence[float], truth: dict[str, Any] | None = None) \
            -> Decision:
        """One frame: ``face_probs`` = P(fake) of each face (empty: no face / no ROI)."""
        if self._last_ts is not None and ts < self._last_ts:
            self._reset()          # stream time went back (file loop, reconnect): start a new window
        frame_score = float(max(face_probs)) if len(face_probs) else None
        self.frames += 1
        if frame_score is None:
            self.no_face_frames += 1
        self._push(ts, frame_score)
        self._update_ema(ts, frame_score)
        self._last_ts = ts
        score = self.rolling_score()
        previous = self.state
        self.state = self._next_state(ts, score)
        d = Decision(self.stream, seq, ts, self.state, previous, score, frame_score, len(face_probs),
                     self._run.n, len(self._win), self.state != previous, truth)
        self.last = d
        return d

    def _next_state(self, ts: float, score: float) -> str:
        c = self.cfg
        scored, total = self._run.n, len(self._win)
        if scored < c.min_scores or scored < c.min_face_fraction * total or math.isnan(score):
            self._pending = None
            return UNKNOWN
        if self.state == FAKE:
            target = REAL if score < c.leave else FAKE
        elif self.state == REAL:
            target = FAKE if score >= c.enter else REAL
        else:
            self._pending = None
            return FAKE if score >= c.enter else REAL
        if target == self.state:
            self._pending = None
            return self.state
        if self._pending is None or self._pending[0] != target:
            self._pending = (target, ts)
        if ts - self._pending[1] >= c.min_duration_s:
            self._pending = None
            return target
        return self.state
