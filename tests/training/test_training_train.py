"""`fakewatch train` on a tiny generated dataset: trains, improves, checkpoints, resumes, evaluates."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from fakewatch.cli import main  # noqa: E402
from fakewatch.core.checkpoint import load_checkpoint  # noqa: E402


def _frame(rng, fake: bool, t: int) -> np.ndarray:
    """A smooth coloured scene with a moving blob; fakes carry a high-frequency patch in the centre."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    base = np.stack([xx * 2 + rng.uniform(0, 60), yy * 2 + rng.uniform(0, 60), (xx + yy) + rng.uniform(0, 60)], -1)
    cx, cy = 20 + (t * 3) % 24, 32
    base += 80 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 60.0)[..., None]
    if fake:
        checker = ((np.indices((64, 64)).sum(0) % 2) * 2 - 1).astype(np.float32)
        base[16:48, 16:48] += 45 * checker[16:48, 16:48, None]
    return np.clip(base, 0, 255).astype(np.uint8)


def _dataset(root, n_videos=6, n_frames=8, seed=0):
    rng = np.random.default_rng(seed)
    for label in ("real", "fake"):
        for v in range(n_videos):
            d = root / label / f"vid{v}"
            d.mkdir(parents=True)
            for t in range(n_frames):   # frames of a "video" as an image folder (one group, never split)
                cv2.imwrite(str(d / f"{t:03d}.png"), _frame(rng, label == "fake", t))
    return root


COMMON = ["--variant", "test", "--init", "random", "--roi", "full", "--batch-size", "16", "--lr", "3e-3",
          "--no-progress", "--seed", "0", "--val-frac", "0.34", "--warmup-frac", "0.0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    data = _dataset(root / "data")
    out = root / "run"
    torch.set_num_threads(2)
    rc = main(["train", str(data), "-o", str(out), "--epochs", "3", "--steps-per-epoch", "8", "--patience", "5",
               *COMMON])
    assert rc == 0
    return data, out


def test_validation_loss_improves_and_files_exist(trained):
    _data, out = trained
    hist = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["loss"] < hist[0]["loss"], [h["loss"] for h in hist]
    assert max(h["frame_auc"] for h in hist) >= 0.9
    split = json.loads((out / "split.json").read_text())["split"]
    assert sum(v == "val" for v in split.values()) == 4   # 2 of 6 groups per class, whole groups only
    for name in ("best.pt", "last.pt", "train_summary.json"):
        assert (out / name).is_file()


def test_checkpoint_contract_round_trips_with_threshold_and_provenance(trained):
    _data, out = trained
    model, spec, _notes = load_checkpoint(out / "best.pt")
    raw = torch.load(str(out / "best.pt"), map_location="cpu", weights_only=True)
    assert spec.variant == "test" and spec.roi == "full" and spec.output == "fake_logit"
    assert spec.threshold == pytest.approx(raw["metrics"]["threshold"], abs=1e-6)
    tr = spec.provenance["training"]
    assert tr["data"]["synth"] == "none" and tr["data"]["real_crops"] == 48 and tr["data"]["val_groups"] == 4
    assert tr["val_metrics"]["frame_auc"] == raw["metrics"]["frame_auc"]
    assert type(spec).from_dict(spec.to_dict()) == spec
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 1)


def test_resume_continues_from_last_epoch(trained, capsys):
    data, out = trained
    rc = main(["train", str(data), "-o", str(out), "--epochs", "4", "--steps-per-epoch", "8", "--patience", "5",
               "--resume", *COMMON])
    assert rc == 0
    assert "resumed from" in capsys.readouterr().out
    hist = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]


def test_eval_only_uses_the_contract_threshold(trained, tmp_path, capsys):
    data, out = trained
    report = tmp_path / "r.json"
    assert main(["train", "--eval-only", str(out / "best.pt"), str(data), "--report", str(report),
                 "--no-progress"]) == 0
    doc = json.loads(report.read_text())
    _m, spec, _ = load_checkpoint(out / "best.pt")
    assert doc["metrics"]["threshold_rule"] == "given"
    assert doc["metrics"]["threshold"] == pytest.approx(spec.threshold, abs=1e-6)
    assert doc["metrics"]["n_frames"] == 96 and doc["metrics"]["frame_auc"] >= 0.9


def test_synth_sbi_trains_without_fake_folder(tmp_path):
    data = _dataset(tmp_path / "d", n_videos=3, n_frames=4)
    import shutil
    shutil.rmtree(data / "fake")
    out = tmp_path / "run"
    assert main(["train", str(data), "-o", str(out), "--synth", "sbi", "--epochs", "1", "--steps-per-epoch", "2",
                 *COMMON]) == 0
    _m, spec, _ = load_checkpoint(out / "best.pt")
    assert spec.provenance["training"]["data"]["synth"] == "sbi"
    assert spec.provenance["training"]["data"]["fake_crops"] == 0


def test_clear_errors(tmp_path, capsys, monkeypatch):
    data = _dataset(tmp_path / "d", n_videos=2, n_frames=2)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["train", str(data), "-o", str(tmp_path / "o"), "--variant", "lite0", "--init", "hub",
               "--epochs", "1", "--no-progress", "--roi", "full"])
    err = capsys.readouterr().err
    assert rc == 1 and "--pretrained-file" in err and "fakewatch train: error:" in err
    assert main(["train", str(tmp_path / "missing"), "-o", str(tmp_path / "o2"), *COMMON]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", str(data), "-o", str(tmp_path / "o3"), "--resume", *COMMON]) == 1
    assert "last.pt" in capsys.readouterr().err


def test_recentering_moves_the_threshold_to_one_half_and_keeps_the_ranking():
    from fakewatch.core.checkpoint import build_model, default_spec
    from fakewatch.core.metrics import compute_metrics
    from fakewatch.training.trainer import recentered

    torch.manual_seed(0)
    model = build_model(default_spec("test", roi="full"))
    x = torch.randn(12, 3, 64, 64)
    y = np.array([0, 1] * 6)
    with torch.no_grad():
        before = torch.sigmoid(model(x)).reshape(-1).numpy()
    m = compute_metrics(y, before)
    weights, metrics = recentered(model, m)
    model.load_state_dict(weights.state_dict())
    with torch.no_grad():
        after = torch.sigmoid(model(x)).reshape(-1).numpy()
    assert metrics["threshold"] == 0.5 and metrics["recentered_from"] == pytest.approx(m.threshold, abs=1e-6)
    assert np.array_equal(np.argsort(before), np.argsort(after))
    assert np.array_equal(before >= m.threshold, after >= 0.5)
    m2 = compute_metrics(y, after, threshold=0.5)
    assert m2.frame_auc == pytest.approx(m.frame_auc) and m2.accuracy == pytest.approx(m.accuracy)
