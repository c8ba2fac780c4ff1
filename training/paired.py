"""Paired real/fake training items, as the SBI paper trains (Shiohara & Yamasaki 2022, official ``src/utils/sbi.py``).

Each item is one real crop and a fake made from that same crop (a self-blend, or a face swap onto it), both passed
through the *same* augmentation draw (flip, colour, resize, blur, noise, JPEG, H.264) and returned together. A batch
therefore holds every face once as real and once as fake: identity, pose, lighting, resolution and compression are
identical on both sides, so the only thing that tells them apart is the manipulation. Unpaired sampling (the
:class:`~fakewatch.training.dataset.CropDataset` default) lets a small-data model separate the classes by "who /
which photo / how compressed" instead, which is what made the earlier demo models flag unseen real people.

``work_scale`` (lo, hi): before blending, the crop is resized so that its width is ``s`` times the model's input
width, ``s`` drawn log-uniformly in [lo, hi] (box and landmarks scaled with it). Without it a 300-pixel photo face
is blended at native resolution and then shrunk to 112 pixels, which erases the blend's frequency traces, and the
model never sees a small real face: measured on the first paired run (``training/results/demo_model/attempt_b``),
every frame of the low-resolution demo man was scored FAKE. Both halves of a pair share ``s``.

Item i -> (inputs float32 [2,3,H,W] = (real, fake), labels float32 [0, 1], index). The trainer flattens the pair
dimension, so ``--batch-size 32`` means 16 pairs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.core.sbi import self_blend
from fakewatch.training.camera_look import CameraLook, camera_look
from fakewatch.training.context_look import ContextLook, context_look
from fakewatch.training.augment import AugmentConfig, augment
from fakewatch.training.data import CropCache, CropRecord

# how the fake half of a pair is made; "swap" pastes another training person's face (training/swaps.py)
PAIR_FAKES = ("sbi", "swap")


class PairedSbiDataset:
    """Map-style dataset of (real, fake-of-the-same-crop) pairs over the real records."""

    def __init__(self, records: Sequence[CropRecord], spec: ModelSpec, *, seed: int = 0,
                 augment_cfg: AugmentConfig | None = AugmentConfig(), p_swap: float = 0.0,
                 swap_blends: Sequence[str] | None = None, work_scale: tuple[float, float] | None = None,
                 camera: CameraLook | None = None, context: ContextLook | None = None, cache_limit: int = 50_000):
        from fakewatch.training.swaps import BLENDS

        self.reals = [r for r in records if r.label == 0]
        if not self.reals:
            raise ValueError("paired training needs real crops (label 0); the data has none")
        if not 0.0 <= p_swap <= 1.0:
            raise ValueError(f"p_swap must be in [0, 1], got {p_swap}")
        self.swap_blends = tuple(sorted(swap_blends if swap_blends is not None else BLENDS))
        unknown = set(self.swap_blends) - set(BLENDS)
        if unknown:
            raise ValueError(f"unknown swap blend(s) {sorted(unknown)}; choose from {sorted(BLENDS)}")
        if p_swap > 0 and (len({r.video_id for r in self.reals}) < 2 or not self.swap_blends):
            raise ValueError("paired face swaps need real faces of at least 2 groups (people) and one blend")
        if work_scale is not None and not (0.0 < work_scale[0] <= work_scale[1]):
            raise ValueError(f"work_scale must be 0 < lo <= hi (fractions of the input width), got {work_scale}")
        self.work_scale = work_scale
        self.camera = camera if camera is not None and camera.p > 0 else None
        self.context = context if context is not None and context.p > 0 else None
        self.spec, self.seed, self.epoch = spec, seed, 0
        self.augment_cfg, self.p_swap = augment_cfg, p_swap
        self.video_ids = [r.video_id for r in self.reals]
        self._crops = CropCache(cache_limit)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.reals)

    def group_weights(self) -> np.ndarray:
        """Sampling weights that make every group (person) equally likely, whatever its number of crops."""
        counts: dict[str, int] = {}
        for g in self.video_ids:
            counts[g] = counts.get(g, 0) + 1
        return np.array([1.0 / (counts[g] * len(counts)) for g in self.video_ids])

    def class_weights(self) -> np.ndarray:
        # every item already holds one real and one fake: uniform over crops
        return np.full(len(self.reals), 1.0 / len(self.reals))

    def _crop(self, rec: CropRecord) -> np.ndarray:
        return self._crops.get(rec)

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(real, fake, how the fake was made) as uint8 BGR crops after the shared augmentation."""
        rec = self.reals[i % len(self.reals)]   # i >= len: a draw-numbered index (training/draws.py)
        rng = np.random.default_rng([self.seed, self.epoch, i, 7])
        real, box, lm_scale = self._crop(rec), rec.face_box, 1.0
        if self.work_scale is not None:
            real, lm_scale = self._rescale(real, rng)
            box = tuple(int(round(v * lm_scale)) for v in rec.face_box)
        # before the fake is made from it, so both halves carry the camera's look (training/camera_look.py);
        # the generator is only drawn from when the option is on: runs without it keep their exact draws
        if self.camera is not None and rng.random() < self.camera.p:
            real = camera_look(real, rng, self.camera)
        how = "swap" if (self.p_swap > 0 and rng.random() < self.p_swap) else "sbi"
        if how == "sbi":
            lm = np.load(rec.landmarks) * np.float32(lm_scale) if rec.landmarks else None
            fake, _ = self_blend(real, box, rng, landmarks=lm)
        else:
            from fakewatch.training.swaps import face_swap
            others = [d for d in self.reals if d.video_id != rec.video_id]
            donor = others[int(rng.integers(len(others)))]
            blend = self.swap_blends[int(rng.integers(len(self.swap_blends)))]
            fake = face_swap(self._crop(donor), donor.face_box, real, box, rng, blend)
        if self.context is not None and rng.random() < self.context.p:   # same look around both halves' faces
            real, fake = context_look(real, fake, rng, self.context)
        if self.augment_cfg is not None:
            # one augmentation draw for both halves: same seed -> same ops and parameters (they never depend on pixels)
            aug_seed = int(rng.integers(2**63))
            real = augment(real, np.random.default_rng(aug_seed), self.augment_cfg)
            fake = augment(fake, np.random.default_rng(aug_seed), self.augment_cfg)
        return real, fake, how

    def _rescale(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        import cv2

        lo, hi = self.work_scale
        width = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * self.spec.input_size[1]
        f = max(8.0, width) / img.shape[1]
        size = (max(8, int(round(img.shape[1] * f))), max(8, int(round(img.shape[0] * f))))
        out = cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        return out, size[0] / img.shape[1]

    def __getitem__(self, i: int):
        from fakewatch.core.preprocess import preprocess
        from fakewatch.core.roi import full_box

        real, fake = self.pair(i)[:2]
        x = preprocess([real, fake], [full_box(real), full_box(fake)], self.spec)
        return x, np.array([0.0, 1.0], np.float32), i
