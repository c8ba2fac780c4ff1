"""Fused CUDA preprocessing on CPU: packing, the kernel's NumPy twin vs cv2 (tolerance), nvcc PTX compile."""
from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np
import pytest

from fakewatch.core.contract import ModelSpec
from fakewatch.core.preprocess import preprocess
from fakewatch.runtime.cuda import kernel_source_path
from fakewatch.runtime.cuda_preprocess import (
    CV2_MAX_ABS_DIFF,
    CV2_MAX_UINT8_STEPS,
    TABLE_FIELDS,
    launch_geometry,
    pack_frames,
    packed_size,
    preprocess_into,
    reference_bilinear,
)

SPEC = ModelSpec(variant="b0", timm_name="efficientnet_b0", input_size=(96, 112), roi="face")
RNG = np.random.default_rng(7)


def _img(h, w, smooth=False):
    im = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(im, (0, 0), 2.0) if smooth else im


# ----------------------------------------------------------------------------- packing
def test_pack_crops_table_and_bytes():
    a, b = _img(40, 50), _img(30, 20)
    packed = pack_frames([a, b], [(5, 4, 25, 14), (0, 0, 20, 30)])
    assert packed.table.shape == (2, TABLE_FIELDS) and packed.table.dtype == np.int64
    assert packed.table[0].tolist() == [0, 20, 10, 60, 0, 0, 20, 10]
    assert packed.table[1].tolist() == [608, 20, 30, 60, 0, 0, 20, 30]  # 600 bytes rounded up to 16
    assert packed.nbytes == packed_size([a, b], [(5, 4, 25, 14), (0, 0, 20, 30)]) == 608 + 1808
    assert np.array_equal(packed.data[:600].reshape(10, 20, 3), a[4:14, 5:25])
    assert np.array_equal(packed.data[608:608 + 1800].reshape(30, 20, 3), b)


def test_pack_whole_frames_shares_one_copy_per_frame():
    a = _img(40, 50)
    boxes = [(0, 0, 10, 10), (20, 5, 50, 40)]
    packed = pack_frames([a, a], boxes, crop_on_host=False)
    assert packed.nbytes == 6000  # one 40x50x3 frame, not two
    assert packed.table[:, 0].tolist() == [0, 0] and packed.table[1, 4:].tolist() == [20, 5, 50, 40]


def test_pack_into_staging_buffer_and_errors():
    a = _img(10, 10)
    staging = np.zeros(4096, np.uint8)
    packed = pack_frames([a], [(0, 0, 10, 10)], out=staging)
    assert packed.data is staging and np.array_equal(staging[:300].reshape(10, 10, 3), a)
    with pytest.raises(ValueError, match="at least 304 bytes"):
        pack_frames([a], [(0, 0, 10, 10)], out=np.zeros(100, np.uint8))
    with pytest.raises(ValueError, match="outside its 10x10 image"):
        pack_frames([a], [(0, 0, 11, 10)])
    with pytest.raises(ValueError, match="empty or outside"):
        pack_frames([a], [(3, 3, 3, 8)])
    with pytest.raises(ValueError, match="uint8 BGR"):
        pack_frames([a.astype(np.float32)], [(0, 0, 10, 10)])
    with pytest.raises(ValueError, match="1 images but 2 boxes"):
        pack_frames([a], [(0, 0, 1, 1)] * 2)


# ----------------------------------------------------------------------------- kernel math vs cv2
CASES = [((480, 640), (100, 50, 400, 350)),   # downscale, face-sized crop
         ((120, 160), (10, 10, 40, 40)),       # upscale a small crop
         ((97, 131), (3, 5, 90, 77)),          # odd sizes
         ((192, 224), (0, 0, 224, 192)),       # exact 2x: cv2 switches to INTER_AREA, same values
         ((96, 112), (0, 0, 112, 96))]         # already the output size: identity


@pytest.mark.parametrize("smooth", [False, True])
def test_reference_matches_cv2_within_documented_tolerance(smooth):
    images = [_img(h, w, smooth) for (h, w), _ in CASES]
    boxes = [box for _, box in CASES]
    ref = reference_bilinear(images, boxes, SPEC)
    cv = preprocess(images, boxes, SPEC)
    diff = np.abs(ref - cv)
    assert diff.max() <= CV2_MAX_ABS_DIFF
    steps = diff * (255.0 * np.asarray(SPEC.std, np.float32))[None, :, None, None]
    assert steps.max() <= CV2_MAX_UINT8_STEPS and steps.mean() < 0.35  # measured: max 0.77, mean 0.21 uint8 step
    assert diff[-1].max() < 1e-6  # identity size: no interpolation, only float rounding of the normalisation
    # it is not trivially equal: random images differ somewhere by more than float noise
    assert diff[:-1].max() > 1e-3


def test_reference_is_independent_of_packing_mode():
    images = [_img(60, 80), _img(60, 80)]
    boxes = [(3, 7, 50, 59), (0, 0, 80, 60)]
    assert np.array_equal(reference_bilinear(images, boxes, SPEC, crop_on_host=True),
                          reference_bilinear(images, boxes, SPEC, crop_on_host=False))


def test_reference_channel_order_and_fp16():
    im = _img(50, 60)
    rgb = reference_bilinear([im], [(0, 0, 60, 50)], SPEC)
    bgr_spec = SPEC.replace(channel_order="BGR", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    rgb_same_norm = reference_bilinear([im], [(0, 0, 60, 50)], SPEC.replace(mean=(0.5,) * 3, std=(0.5,) * 3))
    bgr = reference_bilinear([im], [(0, 0, 60, 50)], bgr_spec)
    assert np.array_equal(bgr[:, ::-1], rgb_same_norm)
    assert np.allclose(preprocess([im], [(0, 0, 60, 50)], bgr_spec), bgr, atol=CV2_MAX_ABS_DIFF)
    half = reference_bilinear([im], [(0, 0, 60, 50)], SPEC, out_dtype=np.float16)
    assert half.dtype == np.float16 and np.abs(half.astype(np.float32) - rgb).max() < 4e-3


def test_launch_geometry_one_launch_per_batch():
    assert launch_geometry(5, 224, 224) == ((7, 28, 5), (32, 8, 1))
    assert launch_geometry(1, 97, 33) == ((2, 13, 1), (32, 8, 1))


def test_preprocess_into_needs_a_gpu_runner():
    class CpuRunner:
        name = "onnxruntime"
        max_batch = None

    with pytest.raises(ValueError, match="onnxruntime runner does not take GPU-preprocessed input"):
        preprocess_into(CpuRunner(), [], [])


# ----------------------------------------------------------------------------- the .cu compiles
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_kernel_compiles_to_ptx(tmp_path):
    out = tmp_path / "preprocess.ptx"
    proc = subprocess.run(["nvcc", "-ptx", "-arch=compute_75", "-Werror", "all-warnings", "-o", str(out),
                           str(kernel_source_path())], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    ptx = out.read_text()
    assert ".visible .entry fw_preprocess_f32(" in ptx and ".visible .entry fw_preprocess_f16(" in ptx
    assert "cvt.rn.f16.f32" in ptx  # fp16 output path really converts
