"""One fresh random draw per sampled item, not per (epoch, item).

The training datasets seed each item's randomness (self-blend mask, blend ratio, augmentation) from
``(seed, epoch, index)``. With a ``WeightedRandomSampler`` drawing ``steps x batch`` indices with replacement from a
few dozen crops, the same index comes back many times in one epoch and gets the *same* fake and the same
augmentation every time: measured on attempt E (57 training crops, 480 pairs per epoch), each epoch held only 57
distinct pairs, the model scored the pairs of its last epoch at AUC 0.90 and fresh draws of the same people at 0.70
(``training/results/demo_model/fit_diagnosis/``). :class:`DrawSampler` numbers every draw instead: it yields
``record + n * position``; the datasets take the record as ``index % n`` and seed from the whole number, so every
draw is a new fake, still reproducible from (seed, epoch, position).
"""
from __future__ import annotations

from typing import Iterable, Iterator


class DrawSampler:
    """Wraps a sampler of record indices in [0, n): yields ``index + n * position`` (position in the epoch)."""

    def __init__(self, sampler: Iterable[int], n: int):
        if n < 1:
            raise ValueError(f"DrawSampler needs at least one record, got n={n}")
        self.sampler, self.n = sampler, n

    def __iter__(self) -> Iterator[int]:
        for pos, i in enumerate(self.sampler):
            yield int(i) + self.n * pos

    def __len__(self) -> int:
        return len(self.sampler)   # type: ignore[arg-type]


def record_of(index: int, n: int) -> int:
    """The record behind a (possibly draw-numbered) dataset index."""
    return index % n
