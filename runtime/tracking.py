"""Face tracks per stream: detect every K frames, follow heads in between, keep stable track ids.

Between detector runs each track moves with a constant-velocity model (centre velocity in pixels per second of
stream time, estimated from successive detections and smoothed). On a detector frame, detections are matched to the
tracks' predicted boxes greedily by IoU (then, for heads too fast to overlap, by centre distance under one face
size); a matched track moves to a blend of prediction and measurement and keeps its
id, an unmatched detection starts a new track (ids count up per stream, never reused), and a track without a match
coasts for at most ``hold_s`` seconds (the detector is retried on the next frame meanwhile) before it is dropped.

No-face rule (unchanged from core/roi.py): a frame without a live track gets no score.

The detector does not run here: :meth:`FaceTracks.due` says which streams need a detection for this frame, the
caller runs the detector (batched over streams) and hands the result to :meth:`FaceTracks.update`; frames in between
use :meth:`FaceTracks.predict`. :meth:`FaceTracks.boxes` does both for one frame, with a detector passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from fakewatch.core.blazeface import iou_one_to_many
from fakewatch.core.roi import Box, Detection, FaceDetector, expand_box


#: detect every K frames by default: the largest K whose tracked crops stayed within IoU 0.94 (mean) / 0.85 (5th
#: percentile) of per-frame detection on real footage (benchmarks/results/face_roi/detect_every.md)
DEFAULT_DETECT_EVERY = 3


@dataclass(frozen=True)
class TrackConfig:
    detect_every: int = 1        # run the detector on every K-th frame of a stream
    every_by_stream: dict[str, int] = field(default_factory=dict)   # per-camera detect_every (config file)
    hold_s: float = 0.5          # a track without detections survives this long (coasting)
    match_iou: float = 0.2       # a detection continues a track when their IoU reaches this
    smooth: float = 0.6          # weight of the new measurement in a matched track's box (1 = detector only)
    velocity_smooth: float = 0.5  # weight of the newest velocity estimate
    max_faces: int = 4
    roi_margin: float = 0.3      # classifier crop = face box grown by this on each side (the model's contract)

    def __post_init__(self) -> None:
        if self.detect_every < 1 or any(k < 1 for k in self.every_by_stream.values()):
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every} {dict(self.every_by_stream)}")
        if self.hold_s < 0:
            raise ValueError(f"hold_s must be >= 0, got {self.hold_s}")
        for name in ("match_iou", "smooth", "velocity_smooth"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {self.max_faces}")


@dataclass
class Track:
    id: int
    box: np.ndarray              # x, y, w, h (float, frame pixels) at ``ts``
    ts: float                    # stream time of ``box``
    det_ts: float                # stream time of the last matched detection
    score: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))   # centre, px/s
    hits: int = 1
    det_centre: np.ndarray | None = None   # centre of the last matched detection (velocity is measured from it)

    def __post_init__(self) -> None:
        if self.det_centre is None:
            self.det_centre = self.box[:2] + self.box[2:] / 2

    def at(self, ts: float) -> np.ndarray:
        """The box predicted for stream time ``ts`` (constant velocity)."""
        dt = max(0.0, ts - self.ts)
        b = self.box.copy()
        b[:2] += self.velocity * dt
        return b


@dataclass
class _Stream:
    tracks: list[Track] = field(default_factory=list)
    shape: tuple[int, int] = (0, 0)
    since_detect: int = 0        # frames since the last detector run
    retry: bool = False          # a track missed: detect again on the next frame
    next_id: int = 1
    last: list[Track] = field(default_factory=list)   # what the last frame was given


def _xyxy(b: np.ndarray) -> np.ndarray:
    return np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]])


class FaceTracks:
    """Per-stream face tracks (see the module docstring)."""

    def __init__(self, cfg: TrackConfig | None = None) -> None:
        self.cfg = cfg or TrackConfig()
        self._streams: dict[str, _Stream] = {}
        self.detector_runs = 0
        self.frames = 0

    def _stream(self, sid: str, shape: tuple[int, int]) -> _Stream:
        st = self._streams.get(sid)
        if st is None:
            st = self._streams[sid] = _Stream(shape=shape)
        elif st.shape != shape:      # new resolution (reconnect): old boxes mean nothing, ids keep counting
            st.tracks, st.shape, st.since_detect, st.retry = [], shape, 0, False
        return st

    def due(self, sid: str, shape: tuple[int, int], at_least: int = 1) -> bool:
        """Whether this stream's current frame should go through the detector (every K frames, K at least
        ``at_least``: the ROI stage's load-driven cadence, runtime/detect_cadence.py)."""
        st = self._stream(sid, shape)
        every = max(at_least, self.cfg.every_by_stream.get(sid, self.cfg.detect_every))
        return st.since_detect == 0 or st.retry or st.since_detect >= every

    def update(self, sid: str, shape: tuple[int, int], ts: float, faces: Sequence[Detection]) -> list[Track]:
        """Fold one detector result (frame pixels) into the stream's tracks; returns the tracks for this frame."""
        st = self._stream(sid, shape)
        self.detector_runs += 1
        self.frames += 1
        st.since_detect = 1
        dets = [np.array(f[:4], float) for f in faces if f[2] > 0 and f[3] > 0]
        scores = [float(f[4]) for f in faces if f[2] > 0 and f[3] > 0]
        preds = [t.at(ts) for t in st.tracks]
        pairs = []
        if dets and preds:
            det_xyxy = np.stack([_xyxy(d) for d in dets])
            det_c = np.stack([d[:2] + d[2:] / 2 for d in dets])
            for ti, p in enumerate(preds):
                ious = iou_one_to_many(_xyxy(p), det_xyxy)
                # a fast head whose velocity is not known yet may not overlap its prediction: fall back to centres
                # closer than the face's size, ranked below every IoU match
                dist = np.linalg.norm(det_c - (p[:2] + p[2:] / 2), axis=1) / max(p[2], p[3], 1.0)
                for di, (iou, d) in enumerate(zip(ious, dist)):
                    if iou >= self.cfg.match_iou:
                        pairs.append((float(iou), ti, di))
                    elif d < 1.0:
                        pairs.append((-float(d), ti, di))
        used_t, used_d = set(), set()
        for _iou, ti, di in sorted(pairs, reverse=True):
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            self._correct(st.tracks[ti], preds[ti], dets[di], scores[di], ts)
        kept = []
        for ti, t in enumerate(st.tracks):
            if ti in used_t:
                kept.append(t)
            elif ts - t.det_ts <= self.cfg.hold_s:    # coast: keep the prediction, slow down, retry next frame
                t.box, t.ts = preds[ti], ts
                t.velocity *= 0.5
                kept.append(t)
        for di, d in enumerate(dets):
            if di not in used_d:
                kept.append(Track(st.next_id, d, ts, ts, scores[di]))
                st.next_id += 1
        st.tracks = kept
        st.retry = any(t.det_ts != ts for t in kept)
        return self._out(st, ts)

    def _correct(self, t: Track, pred: np.ndarray, det: np.ndarray, score: float, ts: float) -> None:
        dt = ts - t.det_ts
        centre = det[:2] + det[2:] / 2
        if dt > 0:
            new_v = (centre - t.det_centre) / dt
            a = self.cfg.velocity_smooth if t.hits > 1 else 1.0
            t.velocity = a * new_v + (1 - a) * t.velocity
        s = self.cfg.smooth
        t.box = s * det + (1 - s) * pred
        t.ts = t.det_ts = ts
        t.score = score
        t.det_centre = centre
        t.hits += 1

    def predict(self, sid: str, shape: tuple[int, int], ts: float) -> list[Track]:
        """Tracks moved to stream time ``ts`` without a detector run; tracks past ``hold_s`` are dropped."""
        st = self._stream(sid, shape)
        self.frames += 1
        st.since_detect += 1
        st.tracks = [t for t in st.tracks if ts - t.det_ts <= self.cfg.hold_s]
        return self._out(st, ts)

    def _out(self, st: _Stream, ts: float) -> list[Track]:
        h, w = st.shape
        out = []
        for t in st.tracks:
            b = t.at(ts)
            x0, y0 = max(0.0, b[0]), max(0.0, b[1])
            x1, y1 = min(float(w), b[0] + b[2]), min(float(h), b[1] + b[3])
            if x1 - x0 >= 2 and y1 - y0 >= 2:          # a track that left the frame gives no crop
                out.append(Track(t.id, np.array([x0, y0, x1 - x0, y1 - y0]), ts, t.det_ts, t.score,
                                 t.velocity.copy(), t.hits, t.det_centre))
        out.sort(key=lambda t: -t.box[2] * t.box[3])
        st.last = out[: self.cfg.max_faces]
        return st.last

    def crops(self, tracks: Sequence[Track], shape: tuple[int, int]) -> list[Box]:
        """The classifier's crop boxes for these tracks (grown by the contract's margin, squared, clipped)."""
        h, w = shape
        return [expand_box(*t.box, self.cfg.roi_margin, w, h) for t in tracks]

    def boxes(self, sid: str, image: np.ndarray, ts: float, detector: FaceDetector) -> tuple[list[Track], bool]:
        """One frame: detect when due, else predict. Returns (tracks, detected)."""
        shape = image.shape[:2]
        if self.due(sid, shape):
            return self.update(sid, shape, ts, detector.detect(image)), True
        return self.predict(sid, shape, ts), False

    def forget(self, sid: str) -> None:
        self._streams.pop(sid, None)

    @property
    def detector_share(self) -> float:
        """Fraction of frames that ran the detector."""
        return self.detector_runs / self.frames if self.frames else 0.0
