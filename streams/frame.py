"""The unit every stage passes around: one decoded image from one source, with its timing record."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Frame:
    source_id: str                  # redacted, stable id of the source (never contains credentials)
    seq: int                        # per-source sequence number of frames read (gaps = dropped frames)
    capture_ts: float               # time.monotonic() when the reader thread got the frame
    image: np.ndarray               # BGR uint8, HxWx3, as OpenCV decodes it
    source_ts: float | None = None  # the source's own timestamp in seconds (PTS), when it has one
    truth: dict[str, Any] | None = None   # ground truth (the demo source sets {"fake": bool, ...})
    # stage name -> time.monotonic() when the stage finished; "capture" is capture_ts. Filled by the runtime.
    timings: dict[str, float] = field(default_factory=dict)
    # source pixels per image pixel: > 1 when the reader scaled the decoded frame down (streams/working_size.py)
    scale: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.image, np.ndarray) and self.image.dtype == np.uint8 and self.image.ndim == 3
                and self.image.shape[2] == 3):
            raise ValueError(f"Frame image must be HxWx3 uint8 BGR, got "
                             f"{getattr(self.image, 'dtype', type(self.image))} {getattr(self.image, 'shape', '')}")
        self.timings.setdefault("capture", self.capture_ts)

    def stamp(self, stage: str, ts: float) -> None:
        self.timings[stage] = ts

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
