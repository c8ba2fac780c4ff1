"""--paired: each real crop with a fake made from it, both through one augmentation draw (the SBI paper's batches)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fakewatch.training.augment import AugmentConfig
from fakewatch.training.data import build_crops, discover
from fakewatch.training.paired import PairedSbiDataset


def _records(tmp_path, spec, people=3):
    rng = np.random.default_rng(0)
    for k in range(people):
        d = tmp_path / "data" / "real" / f"p{k}"
        d.mkdir(parents=True)
        img = cv2.GaussianBlur(rng.integers(0, 255, (80, 80, 3), np.uint8), (0, 0), 2)
        cv2.imwrite(str(d / "a.png"), cv2.add(img, np.full_like(img, 40 * k)))
    records, _ = build_crops(discover(tmp_path / "data", require_fake=False), spec, tmp_path / "cache", 4,
                             progress=False)
    return records


def test_pairs_share_one_augmentation_draw_and_differ_only_in_the_face(tmp_path, tiny_spec):
    records = _records(tmp_path, tiny_spec)
    # geometric/noise augmentations only, so "same draw" is checkable pixel by pixel outside the blend region
    aug = AugmentConfig(p_flip=1.0, p_colour=0, p_blur=0, p_noise=1.0, p_resize=0, p_jpeg=0)
    ds = PairedSbiDataset(records, tiny_spec, seed=0, augment_cfg=aug)
    real, fake, how = ds.pair(0)
    assert how == "sbi" and real.shape == fake.shape
    raw = ds._crop(ds.reals[0])
    x0, y0, x1, y1 = ds.reals[0].face_box
    from fakewatch.core.sbi import mask_region
    rx0, ry0, rx1, ry1 = mask_region((x0, y0, x1, y1), raw.shape)
    w = raw.shape[1]
    outside = np.ones(raw.shape[:2], bool)
    outside[ry0:ry1, w - rx1:w - rx0] = False          # flipped blend region
    assert np.array_equal(real[outside], fake[outside])                  # identical noise + flip outside the face
    assert not np.array_equal(real, fake)                                # the blend is there
    assert not np.array_equal(real[:, ::-1], raw)                        # and the augmentation was applied
    x, y, i = ds[0]
    assert x.shape == (2, 3, *tiny_spec.input_size) and x.dtype == np.float32
    assert y.tolist() == [0.0, 1.0] and i == 0
    # new epoch, new draw; same epoch, same draw (resumable)
    ds.set_epoch(1)
    assert not np.array_equal(ds.pair(0)[1], fake)
    ds.set_epoch(0)
    assert np.array_equal(ds.pair(0)[1], fake)


def test_swap_share_and_held_out_blends(tmp_path, tiny_spec):
    records = _records(tmp_path, tiny_spec)
    ds = PairedSbiDataset(records, tiny_spec, seed=0, augment_cfg=None, p_swap=1.0, swap_blends=("laplacian",))
    hows = {ds.pair(i)[2] for i in range(len(ds))}
    assert hows == {"swap"}
    w = ds.group_weights()
    assert w.sum() == pytest.approx(1.0) and len(set(np.round(w, 9))) == 1
    with pytest.raises(ValueError, match="unknown swap blend"):
        PairedSbiDataset(records, tiny_spec, p_swap=0.5, swap_blends=("poisson", "nope"))
    with pytest.raises(ValueError, match="at least 2 groups"):
        PairedSbiDataset(records[:1], tiny_spec, p_swap=0.5)


def test_paired_training_runs_through_the_cli(tmp_path):
    pytest.importorskip("torch")
    import json

    from fakewatch.cli import main
    records_dir = tmp_path / "d" / "real"
    rng = np.random.default_rng(1)
    for k in range(4):
        (records_dir / f"p{k}").mkdir(parents=True)
        cv2.imwrite(str(records_dir / f"p{k}" / "a.png"),
                    cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), np.uint8), (0, 0), 1.5))
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "d"), "-o", str(out), "--synth", "sbi+swap", "--paired",
                 "--swap-blends", "laplacian", "--variant", "test", "--init", "random", "--roi", "full",
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--val-frac", "0.5",
                 "--no-progress", "--fresh-draws"]) == 0
    cfg = json.loads((out / "history.json").read_text())
    assert len(cfg) == 1 and np.isfinite(cfg[0]["train_loss"])
    from fakewatch.core.checkpoint import load_checkpoint
    assert load_checkpoint(out / "best.pt")[1].provenance["training"]["config"]["fresh_draws"] is True
    assert main(["train", str(tmp_path / "d"), "-o", str(tmp_path / "r2"), "--paired", "--variant", "test",
                 "--init", "random", "--roi", "full", "--no-progress"]) == 1


def test_work_scale_blends_at_the_model_s_size_and_scales_box_and_landmarks(tmp_path, tiny_spec):
    records = _records(tmp_path, tiny_spec)
    w_in = tiny_spec.input_size[1]
    ds = PairedSbiDataset(records, tiny_spec, seed=3, augment_cfg=None, work_scale=(0.5, 0.5))
    real, fake, _ = ds.pair(0)
    assert real.shape == fake.shape and real.shape[1] == round(0.5 * w_in)
    assert not np.array_equal(real, fake)
    wide = PairedSbiDataset(records, tiny_spec, seed=3, augment_cfg=None, work_scale=(2.0, 2.0))
    assert wide.pair(0)[0].shape[1] == 2 * w_in
    with pytest.raises(ValueError, match="work_scale"):
        PairedSbiDataset(records, tiny_spec, work_scale=(1.0, 0.5))


def test_paired_dataset_repeats_a_fake_per_epoch_but_not_per_draw(tmp_path, tiny_spec):
    ds = PairedSbiDataset(_records(tmp_path, tiny_spec), tiny_spec, seed=0, augment_cfg=None)
    n = len(ds)
    ds.set_epoch(2)
    a, b = ds.pair(1)[1], ds.pair(1)[1]
    assert np.array_equal(a, b)                           # the old behaviour: same index -> same fake
    c = ds.pair(1 + n)[1]                                 # same record, another draw
    assert c.shape[:2] == a.shape[:2] and not np.array_equal(a, c)
    assert np.array_equal(ds.pair(1)[0], ds.pair(1 + n)[0])   # no augmentation: the real half is the same crop
    assert np.array_equal(ds.pair(1 + n)[1], c)           # reproducible
    x, y, i = ds[1 + n]
    assert x.shape[0] == 2 and list(y) == [0.0, 1.0] and i == 1 + n


def test_fit_diagnosis_scores_training_and_validation_people_from_the_checkpoint_alone(tmp_path):
    pytest.importorskip("torch")
    from fakewatch.cli import main
    from fakewatch.training.fit_diagnosis import diagnose

    rng = np.random.default_rng(2)
    for k in range(4):
        (tmp_path / "d" / "real" / f"p{k}").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "d" / "real" / f"p{k}" / "a.png"),
                    cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), np.uint8), (0, 0), 1.5))
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "d"), "-o", str(out), "--synth", "sbi", "--paired", "--variant", "test",
                 "--init", "random", "--roi", "full", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4",
                 "--val-frac", "0.5", "--no-progress", "--no-augment"]) == 0
    res = diagnose(out / "best.pt", draws=1, batch_size=4)
    split = json.loads((out / "split.json").read_text())["split"]
    assert res["train_people"]["people"] == sorted(p for p, s in split.items() if s == "train")
    assert res["val_people"]["people"] == sorted(p for p, s in split.items() if s == "val")
    for part in ("train_people", "val_people"):
        for k in ("paired_train_aug", "paired_clean", "val_style"):
            assert 0.0 <= res[part][k] <= 1.0
    # one fake per crop and epoch without --fresh-draws: the last epoch's pairs can be rebuilt and scored
    assert 0.0 <= res["train_people"]["paired_seen_last_epoch"] <= 1.0
    assert res["train_config"]["paired"] is True


def test_camera_look_is_on_both_halves_and_off_leaves_draws_unchanged(tmp_path, tiny_spec):
    import shutil

    from fakewatch.core.sbi import mask_region
    from fakewatch.training.camera_look import CameraLook

    records = _records(tmp_path, tiny_spec)
    plain = PairedSbiDataset(records, tiny_spec, seed=0, augment_cfg=None)
    off = PairedSbiDataset(records, tiny_spec, seed=0, augment_cfg=None, camera=CameraLook(p=0.0))
    for i in range(len(plain)):   # p=0 draws nothing from the generator: earlier runs' pairs are reproduced
        assert all(np.array_equal(a, b) for a, b in zip(plain.pair(i)[:2], off.pair(i)[:2]))
    look = CameraLook(p=1.0, p_h264=0.5 if shutil.which("ffmpeg") else 0.0)
    ds = PairedSbiDataset(records, tiny_spec, seed=0, augment_cfg=None, camera=look)
    raw = ds._crop(ds.reals[0])
    real, fake, how = ds.pair(0)
    assert how == "sbi" and real.shape == raw.shape == fake.shape
    assert np.abs(real.astype(int) - raw).mean() > 0.5          # the real half got the camera's look
    rx0, ry0, rx1, ry1 = mask_region(ds.reals[0].face_box, raw.shape)
    outside = np.ones(raw.shape[:2], bool)
    outside[ry0:ry1, rx0:rx1] = False
    assert np.array_equal(real[outside], fake[outside])          # the fake was made from the looked real
    assert not np.array_equal(real, fake)


def test_camera_look_config_and_draws():
    from fakewatch.training.camera_look import CameraLook, camera_look

    with pytest.raises(ValueError, match="p and p_h264"):
        CameraLook(p=1.5)
    with pytest.raises(ValueError, match="crf"):
        CameraLook(crf=(30, 20))
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (48, 40, 3), np.uint8), (0, 0), 2)
    cfg = CameraLook(p=1.0, p_h264=0.0, sharpen=(1.0, 1.0), noise_sigma=(4.0, 4.0), jpeg_quality=(95, 95))
    a = camera_look(img, np.random.default_rng(3), cfg)
    b = camera_look(img, np.random.default_rng(3), cfg)
    assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    # sharpening + noise add high-frequency energy: the Laplacian's variance grows
    lap = [cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() for x in (img, a)]
    assert lap[1] > 2 * lap[0]


def test_cli_camera_look_needs_paired():
    import argparse

    from fakewatch.training import cli as train_cli

    ap = argparse.ArgumentParser()
    train_cli.register(ap.add_subparsers())
    args = ap.parse_args(["train", "data.csv", "--synth", "sbi", "--camera-look", "0.5"])
    with pytest.raises(ValueError, match="--camera-look .* needs --paired"):
        args.func(args)


def test_context_look_touches_only_what_the_fake_left_alone_and_both_halves_alike():
    from fakewatch.core.sbi import self_blend
    from fakewatch.training.context_look import ContextLook, context_look, context_weight

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (100, 90, 3), np.uint8), (0, 0), 2)
    fake, _ = self_blend(img, (25, 25, 65, 75), rng)
    changed = np.any(img != fake, axis=2)
    assert changed.any()
    for seed in range(4):
        real2, fake2 = context_look(img, fake, np.random.default_rng(seed), ContextLook(p=1.0))
        assert np.array_equal(real2[~changed], fake2[~changed])     # surroundings: the same look on both halves
        assert np.array_equal(fake2[changed], fake[changed])        # the manipulation itself is untouched
        assert np.array_equal(real2[changed], img[changed])
        far = context_weight(changed, ContextLook()) == 1.0
        assert np.abs(real2[far].astype(int) - img[far]).mean() > 1.0   # and the surroundings did change
    w = context_weight(changed, ContextLook(guard_px=2, ramp_px=3))
    assert w[changed].max() == 0.0 and w.max() == 1.0
    with pytest.raises(ValueError, match="one shape"):
        context_look(img, fake[:50], rng)
    with pytest.raises(ValueError, match="p_stripes"):
        ContextLook(p_stripes=2.0)


def test_context_look_in_pairs_and_its_cli_guard(tmp_path, tiny_spec):
    import argparse

    from fakewatch.training import cli as train_cli
    from fakewatch.training.context_look import ContextLook

    records = _records(tmp_path, tiny_spec)
    plain = PairedSbiDataset(records, tiny_spec, seed=0, augment_cfg=None)
    ds = PairedSbiDataset(records, tiny_spec, seed=0, augment_cfg=None, context=ContextLook(p=1.0))
    real0, fake0, _ = plain.pair(0)
    real1, fake1, _ = ds.pair(0)
    assert not np.array_equal(real0, real1)                          # the real half got the surroundings' look
    same = np.all(real1 == fake1, axis=2)
    assert same.mean() > 0.3 and not same.all()                      # still one pair: equal except the blend
    off = PairedSbiDataset(records, tiny_spec, seed=0, augment_cfg=None, context=ContextLook(p=0.0))
    assert np.array_equal(off.pair(0)[1], fake0)                     # p=0 leaves earlier runs' draws alone
    ap = argparse.ArgumentParser()
    train_cli.register(ap.add_subparsers())
    args = ap.parse_args(["train", "data.csv", "--synth", "sbi", "--context-look", "0.5"])
    with pytest.raises(ValueError, match="--context-look .* needs --paired"):
        args.func(args)
