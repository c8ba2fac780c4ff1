"""Torch dataset over cached crops: real/fake crops plus on-the-fly self-blended fakes, model input via the runtime.

Item i -> (input float32 [3,H,W] exactly as ``fakewatch.core.preprocess.preprocess`` makes it, label float, index).
Training items draw fresh randomness per (seed, epoch, i); validation items are fixed per (seed, i) so every epoch
and every ``--eval-only`` run scores the same fakes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.core.sbi import self_blend
from fakewatch.training.augment import AugmentConfig, augment
from fakewatch.training.data import CropCache, CropRecord

# sbi: self-blends of each real crop; sbi+swap: also face swaps between two different people (groups) of the data,
# pasted by a random blend of training/swaps.py (Poisson, Laplacian pyramid, colour transfer)
SYNTH_MODES = ("none", "sbi", "sbi+swap")


class CropDataset:
    """Map-style dataset (torch's DataLoader accepts any object with __len__/__getitem__)."""

    def __init__(self, records: Sequence[CropRecord], spec: ModelSpec, *, synth: str = "none", train: bool = True,
                 seed: int = 0, augment_cfg: AugmentConfig | None = AugmentConfig(), cache_limit: int = 50_000,
                 sbi_copies: int = 1):
        if synth not in SYNTH_MODES:
            raise ValueError(f"unknown --synth {synth!r}; choose from {SYNTH_MODES}")
        self.spec = spec
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.augment_cfg = augment_cfg if train else None
        # (record, how to make a fake from it: "" = use as is, "sbi" = self-blend, "swap" = another person's face)
        self.items: list[tuple[CropRecord, str]] = [(r, "") for r in records]
        reals = [r for r in records if r.label == 0]
        if synth in ("sbi", "sbi+swap"):   # sbi_copies > 1: several differently blended fakes per real
            if sbi_copies < 1:
                raise ValueError(f"sbi_copies must be >= 1, got {sbi_copies}")
            self.items += [(r, "sbi") for _ in range(sbi_copies) for r in reals]
        self._donors: list[CropRecord] = []
        if synth == "sbi+swap" and len({r.video_id for r in reals}) >= 2:
            self._donors = reals
            self.items += [(r, "swap") for r in reals]
        elif synth == "sbi+swap" and train:
            raise ValueError("--synth sbi+swap needs real faces of at least 2 groups (people) to swap between")
        self.labels = np.array([1 if (r.label == 1 or how) else 0 for r, how in self.items], np.int64)
        self.video_ids = [(f"{r.video_id}#{how}" if how else r.video_id) for r, how in self.items]
        self._crops = CropCache(cache_limit)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def class_weights(self) -> np.ndarray:
        """Per-item sampling weights that make both classes equally likely (class balance by sampling)."""
        counts = np.bincount(self.labels, minlength=2).astype(np.float64)
        return np.where(counts[self.labels] > 0, 1.0 / np.maximum(counts[self.labels], 1.0), 0.0)

    def group_weights(self) -> np.ndarray:
        """Sampling weights that make both classes equally likely and, within a class, every group (video id or
        identity) equally likely: a person with one photo is drawn as often as a person with a long video."""
        labels, groups = self.labels, [g.split("#")[0] for g in self.video_ids]
        counts: dict[tuple[int, str], int] = {}
        for lab, g in zip(labels.tolist(), groups):
            counts[(lab, g)] = counts.get((lab, g), 0) + 1
        n_groups = {lab: sum(1 for (l2, _g) in counts if l2 == lab) for lab in (0, 1)}
        return np.array([1.0 / (counts[(lab, g)] * n_groups[lab]) for lab, g in zip(labels.tolist(), groups)])

    def _crop(self, rec: CropRecord) -> np.ndarray:
        return self._crops.get(rec)

    def image(self, i: int) -> np.ndarray:
        """The uint8 BGR crop of item i after SBI and augmentation (what the model sees, before normalising)."""
        rec, how = self.items[i % len(self.items)]   # i >= len: a draw-numbered index (training/draws.py)
        rng = np.random.default_rng([self.seed, self.epoch if self.train else 0, i, int(self.train)])
        img = self._crop(rec)
        if how == "sbi":
            lm = np.load(rec.landmarks) if rec.landmarks else None   # paper-style landmark-hull masks
            img, _ = self_blend(img, rec.face_box, rng, landmarks=lm)
        elif how == "swap":
            from fakewatch.training.swaps import BLENDS, face_swap
            others = [d for d in self._donors if d.video_id != rec.video_id]
            donor = others[int(rng.integers(len(others)))]
            blend = sorted(BLENDS)[int(rng.integers(len(BLENDS)))]
            img = face_swap(self._crop(donor), donor.face_box, img, rec.face_box, rng, blend)
        if self.augment_cfg is not None:
            img = augment(img, rng, self.augment_cfg)
        return img

    def __getitem__(self, i: int):
        from fakewatch.core.preprocess import preprocess
        from fakewatch.core.roi import full_box

        img = self.image(i)
        x = preprocess([img], [full_box(img)], self.spec)[0]   # the runtime's own crop->input function
        return x, np.float32(self.labels[i % len(self.items)]), i
