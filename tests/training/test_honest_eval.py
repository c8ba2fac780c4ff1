"""`fakewatch eval`: metrics on hand-made scores, swaps and re-encodes on generated images, the CLI on a tiny model."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fakewatch.training.honest_eval import EvalConfig, grouped_bootstrap, h264, report, tpr_at_fpr
from fakewatch.training.swaps import BLENDS, face_swap

from .people import face_image, write_people_manifest


def test_tpr_at_fpr_lets_at_most_the_asked_share_of_reals_through():
    reals = np.arange(100) / 100.0                  # 0.00 .. 0.99
    fakes = np.array([0.985, 0.995, 0.5, 0.999])
    tpr, thr = tpr_at_fpr(reals, fakes, 0.01)       # one real (0.99) may pass
    assert 0.98 < thr <= 0.99 and np.mean(reals >= thr) == pytest.approx(0.01)
    assert tpr == pytest.approx(0.75)                # 0.985, 0.995, 0.999
    tpr0, thr0 = tpr_at_fpr(reals, fakes, 0.001)    # no real may pass
    assert thr0 > 0.99 and tpr0 == pytest.approx(0.5)


def test_report_fpr_per_person_and_auc_per_type():
    # person a: reals 0.1, 0.2, one real 0.9 (a false alarm); sbi fakes 0.8, 0.95; swap fakes 0.3
    scores = [0.1, 0.2, 0.9, 0.8, 0.95, 0.3, 0.05, 0.15, 0.6, 0.7]
    kinds = ["real", "real", "real", "sbi", "sbi", "swap_poisson", "real", "real_h264_crf32", "sbi", "swap_poisson"]
    people = ["a", "a", "a", "a", "a", "a", "b", "b", "b", "b"]
    rep = report(np.array(scores), kinds, people, 0.5, EvalConfig(bootstrap=200))
    r = rep["reals"]["real"]
    assert r["n"] == 4 and r["fpr_at_threshold"] == pytest.approx(0.25)
    assert r["fpr_per_person"] == {"a": pytest.approx(1 / 3, abs=1e-3), "b": 0.0}
    assert r["fpr_mean_over_people"] == pytest.approx(1 / 6, abs=1e-3)
    assert rep["reals"]["real_h264_crf32"]["fpr_at_threshold"] == 0.0
    # sbi (0.8, 0.95, 0.6) vs reals (0.1, 0.2, 0.9, 0.05): 3 + 4 + 3 = 10 of 12 pairs ordered right
    assert rep["fakes"]["sbi"]["auc"] == pytest.approx(10 / 12, abs=1e-4)
    assert rep["fakes"]["sbi"]["tpr_at_threshold"] == pytest.approx(1.0)
    # swap (0.3, 0.7) vs reals: 0.3 beats 3 of 4, 0.7 beats 3 of 4 -> 6/8
    assert rep["fakes"]["swap_poisson"]["auc"] == pytest.approx(0.75)
    # every person weighted equally: a's 3 reals weigh 1/3 each, b's one real 1; a's 2 sbi fakes 1/2 each, b's 1.
    # 0.8 -> (2/3 + 1) / 2, 0.95 -> 2 / 2, 0.6 -> 2/3 + 1; over (2 x 2) = 3.5 / 4
    assert rep["fakes"]["sbi"]["auc_person_balanced"] == pytest.approx(0.875, abs=1e-4)
    lo, hi = rep["fakes"]["sbi"]["auc_ci95"]
    assert 0.0 <= lo <= rep["fakes"]["sbi"]["auc"] <= hi <= 1.0


def test_bootstrap_resamples_whole_people():
    people = np.array(["a"] * 50 + ["b"] * 50)
    # a statistic that is 1 for person a's rows, 0 for b's: the resampled mean can only take values 0, 0.5, 1
    vals = np.r_[np.ones(50), np.zeros(50)]
    lo, hi = grouped_bootstrap(people, lambda ix: float(vals[ix].mean()), 300, seed=0)
    assert lo == 0.0 and hi == 1.0
    assert grouped_bootstrap(people, lambda ix: 1.0, 0, 0) is None


@pytest.mark.parametrize("blend", sorted(BLENDS))
def test_face_swap_changes_the_face_and_keeps_the_background(blend):
    rng = np.random.default_rng(0)
    target = face_image(rng, (60, 120, 200))
    source = face_image(rng, (200, 160, 90))
    box = (18, 20, 62, 80)
    out = face_swap(source, box, target, box, np.random.default_rng(1), blend)
    assert out.shape == target.shape and out.dtype == np.uint8
    inner = (slice(40, 60), slice(30, 50))
    assert np.abs(out[inner].astype(int) - target[inner]).mean() > 5      # the face changed
    far = out[:8, :].astype(int) - target[:8, :]                            # rows far above the face box
    assert np.abs(far).max() <= 2
    with pytest.raises(ValueError, match="unknown swap blend"):
        face_swap(source, box, target, box, rng, "nope")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")
def test_h264_reencode_degrades_with_crf_and_keeps_odd_sizes():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (61, 75, 3), np.uint8), (0, 0), 4)
    good, bad = h264(img, 10), h264(img, 45)
    assert good.shape == img.shape == bad.shape
    err_good = np.abs(good.astype(int) - img).mean()
    err_bad = np.abs(bad.astype(int) - img).mean()
    assert err_good < 4.0 and err_bad > err_good


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")
def test_eval_cli_reports_every_sample_type(tiny_onnx, tmp_path):
    manifest = write_people_manifest(tmp_path, np.random.default_rng(0))
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "fakewatch", "eval", str(tiny_onnx), str(manifest), "--report",
                           str(out), "--md", str(tmp_path / "eval.md"), "--plot", str(tmp_path / "eval.png"),
                           "--crf", "30", "--bootstrap", "50", "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["people"] == ["ann", "ben", "cid"]
    assert doc["reals"]["real"]["n"] == 6 and doc["reals"]["real_h264_crf30"]["n"] == 6
    assert set(doc["fakes"]) == {"sbi", "swap_poisson", "swap_laplacian", "swap_colour_transfer"}
    assert doc["fakes"]["sbi"]["n"] == 12 and doc["fakes"]["swap_poisson"]["n"] == 6
    for v in doc["fakes"].values():
        assert 0.0 <= v["auc"] <= 1.0
    assert doc["summary"]["people"] == 3 and "fakewatch eval" in doc["meta"]["command"]
    assert 0.0 <= doc["reals"]["real"]["fpr_mean_over_people"] <= 1.0
    assert (tmp_path / "eval.png").stat().st_size > 10_000
    assert "| sbi |" in (tmp_path / "eval.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "fakewatch", "eval", str(tiny_onnx), str(manifest), "--crf", "x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--crf takes integers" in bad.stderr
