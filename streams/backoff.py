"""Reconnect schedule: exponential backoff with jitter, forever by default."""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5          # wait before the first retry
    max_s: float = 30.0             # cap on any single wait
    factor: float = 2.0             # growth per consecutive failure
    jitter: float = 0.25            # +-fraction, so many cameras behind one switch do not retry in lockstep
    max_retries: int | None = None  # consecutive failed attempts before "failed"; None = retry forever

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid Backoff {self}: need 0 <= initial_s <= max_s, factor >= 1, 0 <= jitter < 1")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"Backoff.max_retries must be >= 0 or None, got {self.max_retries}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))
        r = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + r))

    def exhausted(self, attempt: int) -> bool:
        return self.max_retries is not None and attempt > self.max_retries
