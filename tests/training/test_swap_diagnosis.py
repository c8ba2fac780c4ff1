"""swap_diagnosis: image features on generated images, swaps keep donor provenance, the CLI on a tiny model."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from fakewatch.training.swap_diagnosis import (BOX_PERTURBATIONS, PERTURBATIONS, blockiness, features, hf_fraction,
                                               make_swaps, spearman)

from .people import face_image, write_people_manifest


def test_high_frequency_share_and_sharpness_drop_with_blur():
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (112, 112, 3), np.uint8)
    smooth = cv2.GaussianBlur(noisy, (0, 0), 3)
    grey = [cv2.cvtColor(x, cv2.COLOR_BGR2GRAY) for x in (noisy, smooth)]
    assert hf_fraction(grey[0]) > 0.5 > 0.05 > hf_fraction(grey[1])
    box = (20, 20, 92, 92)
    assert features(noisy, box, 112)["sharpness_lapvar"] > 20 * features(smooth, box, 112)["sharpness_lapvar"]
    busy = noisy.copy()                      # the demo man's case: a flat face in sharp surroundings
    busy[20:92, 20:92] = smooth[20:92, 20:92]
    assert features(busy, box, 112)["context_over_face_sharpness"] > 10 > features(noisy, box, 112)[
        "context_over_face_sharpness"]


def test_blockiness_sees_the_jpeg_grid():
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.integers(0, 255, (128, 128), np.uint8), (0, 0), 2)
    ok, buf = cv2.imencode(".jpg", base, [cv2.IMWRITE_JPEG_QUALITY, 10])
    blocky = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    assert blockiness(blocky) > 1.3 > blockiness(base)


def test_spearman_ranks_and_refuses_constants():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == 1.0
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_swaps_take_their_donor_from_another_person():
    rng = np.random.default_rng(2)
    colours = {"ann": (60, 120, 200), "ben": (200, 160, 90), "cid": (90, 200, 90)}
    records = [SimpleNamespace(video_id=p, face_box=(18, 20, 62, 80), img=face_image(rng, c))
               for p, c in colours.items() for _ in range(2)]
    swaps = make_swaps(records, lambda r: r.img, ["poisson", "laplacian"])
    assert len(swaps) == 2 * len(records)
    for s in swaps:
        assert records[s["donor"]].video_id != records[s["target"]].video_id
        assert s["image"].shape == records[s["target"]].img.shape
    assert {s["blend"] for s in swaps} == {"poisson", "laplacian"}


def test_perturbations_keep_type_and_region_blurs_stay_in_their_region():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (96, 80, 3), np.uint8)
    for name, f in PERTURBATIONS.items():
        if name.startswith("h264") and shutil.which("ffmpeg") is None:
            continue
        out = f(img)
        assert out.dtype == np.uint8 and out.ndim == 3, name
        if not name.startswith("small"):
            assert out.shape == img.shape, name
    assert PERTURBATIONS["small100_area"](np.zeros((300, 200, 3), np.uint8)).shape == (150, 100, 3)
    box = (20, 30, 60, 80)
    inside = BOX_PERTURBATIONS["blur_inside_face_s1.5"](img, box)
    outside = BOX_PERTURBATIONS["blur_outside_face_s1.5"](img, box)
    face = (slice(30, 80), slice(20, 60))
    assert np.array_equal(inside[:30], img[:30]) and not np.array_equal(inside[face], img[face])
    assert np.array_equal(outside[face], img[face]) and not np.array_equal(outside[:30], img[:30])


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary (h264 perturbation)")
def test_cli_writes_every_section_per_model(tiny_onnx, tmp_path):
    manifest = write_people_manifest(tmp_path, np.random.default_rng(0))
    out = tmp_path / "d.json"
    proc = subprocess.run([sys.executable, "-m", "fakewatch.training.swap_diagnosis", f"tiny={tiny_onnx}",
                           "--people", str(manifest), "--out", str(out), "--cache-dir", str(tmp_path / "crops"),
                           "--dominant", "ann", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    m = doc["models"]["tiny"]
    assert doc["real_crops"] == 6 and doc["people"] == ["ann", "ben", "cid"]
    assert m["swap_composition"]["all"]["n"] == 18 and m["swap_composition"]["poisson"]["n"] == 6
    assert 0.0 <= m["swap_composition"]["all"]["auc_pooled"] <= 1.0
    assert set(m["perturbed_reals"]) == set(PERTURBATIONS) | set(BOX_PERTURBATIONS)
    for v in m["perturbed_reals"].values():
        assert 0.0 <= v["share_toward_fake"] <= 1.0 and set(v["fpr_per_person"]) == {"ann", "ben", "cid"}
    assert "| all | 18 |" in out.with_suffix(".md").read_text()
    assert 0.0 <= m["swap_composition"]["all"]["auc_person_balanced"] <= 1.0
    assert out.with_suffix(".png").stat().st_size > 10_000
    replot = subprocess.run([sys.executable, "-m", "fakewatch.training.swap_diagnosis_plot", str(out), "--out",
                             str(tmp_path / "again.png"), "--dominant", "ann"], capture_output=True, text=True,
                            timeout=120)
    assert replot.returncode == 0 and (tmp_path / "again.png").stat().st_size > 10_000
    bad = subprocess.run([sys.executable, "-m", "fakewatch.training.swap_diagnosis", str(tmp_path / "nope.onnx"),
                          "--people", str(manifest), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
