"""Detect less often when the CPU cannot keep up: the ROI stage's detection cadence follows the frames it misses.

The tracker detects every ``base`` frames of a stream (``--detect-every``, K=3 by default, chosen for crop quality by
``benchmarks/face_track.py``). When more streams arrive than the CPU can serve, the readers replace frames nobody
took (newest frame wins) and every stream loses frames. Face detection is the largest cost the pipeline controls
(BlazeFace full range ~5 ms per detection on one core vs ~1.3 ms per classifier row), so before frames are lost the
stage stretches the cadence, one step per window, up to ``max_every``; when a window passes without losses for
``calm_windows`` windows in a row it steps back towards ``base``. Tracks carry the boxes in between (constant
velocity), so a stretched cadence costs box accuracy (crop IoU vs per-frame detection, carphone: 0.947 at K=3, 0.909
at K=6, ``benchmarks/results/face_roi/detect_every.md``), not frames. Frigate detects at 5 fps by default; K=6 at 30
fps is the same rate. ``max_every == base`` turns the controller off.

The signal is local and free: the gap in a stream's frame sequence numbers between two frames the stage took is the
number of frames its reader replaced.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class CadenceConfig:
    base: int = 3                # detect every ``base`` frames while nothing is lost
    max_every: int = 6           # never stretch beyond this
    window_s: float = 1.0        # decide once per window
    raise_above: float = 0.02    # fraction of frames lost in a window that stretches the cadence
    lower_below: float = 0.005   # ... at most this lost, ``calm_windows`` windows in a row, shortens it again
    calm_windows: int = 3

    def __post_init__(self) -> None:
        if self.base < 1 or self.max_every < self.base:
            raise ValueError(f"detect cadence: need 1 <= detect_every ({self.base}) <= max_detect_every "
                             f"({self.max_every}) (--detect-every / --max-detect-every); give both the same value "
                             f"for a fixed cadence")
        if self.window_s <= 0 or self.calm_windows < 1:
            raise ValueError(f"detect cadence: window_s must be > 0 and calm_windows >= 1, got {self.window_s}, "
                             f"{self.calm_windows}")
        if not 0 <= self.lower_below <= self.raise_above < 1:
            raise ValueError(f"detect cadence: need 0 <= lower_below ({self.lower_below}) <= raise_above "
                             f"({self.raise_above}) < 1")


class DetectCadence:
    """``observe`` every batch of frames the stage takes; ``k`` is the current detect-every for all streams."""

    def __init__(self, cfg: CadenceConfig | None = None) -> None:
        self.cfg = cfg or CadenceConfig()
        self.k = self.cfg.base
        self.frames_at: Counter[int] = Counter()    # frames prepared at each cadence (the run's summary)
        self._last_seq: dict[str, int] = {}
        self._window_start: float | None = None
        self._taken = 0
        self._lost = 0
        self._calm = 0

    def lost_before(self, sid: str, seq: int) -> int:
        """Frames of stream ``sid`` the reader replaced since the stage last took one (0 for the first)."""
        last = self._last_seq.get(sid)
        self._last_seq[sid] = seq
        return 0 if last is None or seq <= last else seq - last - 1

    def observe(self, now: float, taken: int, lost: int) -> int:
        """Count ``taken`` frames and ``lost`` replaced ones; at the end of a window, adjust ``k``. Returns ``k``."""
        self.frames_at[self.k] += taken
        if self._window_start is None:
            self._window_start = now
        self._taken += taken
        self._lost += lost
        if now - self._window_start >= self.cfg.window_s:
            offered = self._taken + self._lost
            frac = self._lost / offered if offered else 0.0
            if frac > self.cfg.raise_above:
                self.k = min(self.cfg.max_every, self.k + 1)
                self._calm = 0
            elif frac <= self.cfg.lower_below:
                self._calm += 1
                if self._calm >= self.cfg.calm_windows and self.k > self.cfg.base:
                    self.k -= 1
                    self._calm = 0
            else:
                self._calm = 0
            self._window_start, self._taken, self._lost = now, 0, 0
        return self.k

    def forget(self, sid: str) -> None:
        self._last_seq.pop(sid, None)
