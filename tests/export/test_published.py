"""Published detectors: the authors' checkpoint files (random weights, their key names, shapes and containers) load,
export to ONNX and score exactly as the authors' own forward does; crops and resizing match their code pixel for
pixel. Fast tests use B0-sized members of the same recipes; the real B4/B7 shapes run under ``-m slow``."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("efficientnet_pytorch")
ort = pytest.importorskip("onnxruntime")

from fakewatch.core.checkpoint import load_checkpoint  # noqa: E402
from fakewatch.core.contract import ContractError, ModelSpec, load_spec  # noqa: E402
from fakewatch.core.preprocess import preprocess  # noqa: E402
from fakewatch.core.published import (  # noqa: E402
    RECIPES, PublishedError, detect_recipe, load_published, torch_load_weights)
from fakewatch.core.roi import face_box  # noqa: E402
from fakewatch.export.onnx_export import export_onnx  # noqa: E402

from . import published_refs as R  # noqa: E402


def _x(size: int, n: int = 2, seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, (n, 3, size, size)).astype(np.float32)


def _ours(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x))[:, 0]).numpy()


def _onnx_prob(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logit = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return 1.0 / (1.0 + np.exp(-logit[:, 0].astype(np.float64)))


# ----------------------------------------------------------------------------- SBI
@pytest.fixture(scope="module")
def sbi_b0(tmp_path_factory):
    x = torch.from_numpy(_x(380, n=4))
    ref = R.sensitize_sbi(R.randomize_(R.SbiDetector("efficientnet-b0"), 1, x), x)
    path = R.save_sbi(ref, tmp_path_factory.mktemp("sbi") / "sbi.tar")
    return ref, path


def test_sbi_checkpoint_is_detected_and_scores_like_the_original(sbi_b0, tmp_path):
    ref, path = sbi_b0
    assert detect_recipe(torch_load_weights(path)).name == "sbi"
    model, spec, notes = load_published([path])
    assert (spec.variant, spec.input_size, spec.mean, spec.std) == ("tf-b0", (380, 380), (0, 0, 0), (1, 1, 1))
    assert (spec.resize, spec.roi_rule, spec.roi_margin, spec.channel_order) == ("linear", "sbi", 0.125, "RGB")
    assert spec.provenance["published"] == "sbi" and spec.provenance["head"] == "softmax2"
    x = _x(380)                                      # SBI feeds /255 pixels: [0, 1]
    want = R.sbi_prob(ref, torch.from_numpy(x))
    assert abs(want[0] - want[1]) > 0.5              # P(fake) depends strongly on the backbone: the test can fail
    np.testing.assert_allclose(_ours(model, x), want, atol=2e-5)
    report = export_onnx(model, spec, tmp_path / "sbi.onnx", verify_batches=(1,))
    np.testing.assert_allclose(_onnx_prob(report.path, x), want, atol=5e-5)
    assert load_spec(report.path) == report.spec


# ----------------------------------------------------------------------------- DeepfakeBench
@pytest.fixture(scope="module")
def dfb_b0(tmp_path_factory):
    x = torch.from_numpy(_x(256, n=4, lo=-1.0, hi=1.0))
    ref = R.sensitize_dfb(R.randomize_(R.DfbDetector("efficientnet-b0"), 2, x), x)
    path = R.save_dfb(ref, tmp_path_factory.mktemp("dfb") / "effnb0_best.pth")
    return ref, path


def test_deepfakebench_static_padding_and_unpadded_stem_reproduce_the_original(dfb_b0, tmp_path):
    ref, path = dfb_b0
    model, spec, _ = load_published([path])
    assert spec.provenance["published"] == "deepfakebench-effb4"
    assert (spec.input_size, spec.mean, spec.std, spec.resize) == ((256, 256), (0.5,) * 3, (0.5,) * 3, "cubic")
    x = _x(256, lo=-1.0, hi=1.0)
    want = R.dfb_prob(ref, torch.from_numpy(x))
    assert abs(want[0] - want[1]) > 0.5
    np.testing.assert_allclose(_ours(model, x), want, atol=2e-5)
    report = export_onnx(model, spec, tmp_path / "dfb.onnx", verify_batches=(1,))
    np.testing.assert_allclose(_onnx_prob(report.path, x), want, atol=5e-5)


def test_deepfakebench_without_the_static_padding_would_differ(dfb_b0):
    """Negative control: timm's dynamic SAME padding at 256 px is NOT what EfficientNet-PyTorch computes."""
    import dataclasses

    ref, path = dfb_b0
    rec = dataclasses.replace(RECIPES["deepfakebench-effb4"], static_same_padding=False)
    from fakewatch.core import published as P

    model, _ = P._load_one(path, rec, None)
    x = _x(256, lo=-1.0, hi=1.0)
    assert np.abs(_ours(model, x) - R.dfb_prob(ref, torch.from_numpy(x))).max() > 1e-2


# ----------------------------------------------------------------------------- DFDC winner
@pytest.fixture(scope="module")
def dfdc_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("dfdc")
    refs, paths = [], []
    for seed in (3, 4):
        x = torch.from_numpy(_x(380, n=4, seed=seed, lo=-2.0, hi=2.0))
        ref = R.sensitize_dfdc(R.randomize_(R.DeepFakeClassifier("tf_efficientnet_b0"), seed, x), x)
        refs.append(ref)
        paths.append(R.save_dfdc(ref, d / f"final_{seed}_DeepFakeClassifier_tf_efficientnet_b0_ns_0_{seed}"))
    return refs, paths


def test_dfdc_checkpoint_with_numpy_metadata_loads_through_weights_only(dfdc_pair):
    _, paths = dfdc_pair
    obj = torch_load_weights(paths[0])
    assert isinstance(obj["bce_best"], np.floating) and "module.fc.weight" in obj["state_dict"]
    assert detect_recipe(obj).name == "dfdc-selimsef"


def test_dfdc_ensemble_is_one_onnx_averaging_member_probabilities(dfdc_pair, tmp_path):
    refs, paths = dfdc_pair
    model, spec, _ = load_published(paths, "dfdc-selimsef")
    assert spec.provenance["ensemble"].startswith("2 models")
    assert (spec.resize, spec.roi_rule, spec.mean) == ("isotropic_pad", "dfdc", (0.485, 0.456, 0.406))
    x = np.concatenate([_x(380, seed=3, lo=-2.0, hi=2.0), _x(380, seed=4, lo=-2.0, hi=2.0)])
    members = [R.dfdc_prob(r, torch.from_numpy(x)) for r in refs]
    want = np.mean(members, axis=0)                 # kernel_utils: mean of the models' sigmoid outputs
    assert abs(members[0][0] - members[0][1]) > 0.5 and abs(members[1][2] - members[1][3]) > 0.5
    np.testing.assert_allclose(_ours(model, x), want, atol=2e-5)
    # export's own logit check on fresh random pixels: the random-weight members' logits reach ~16 and ORT/torch
    # differ by up to ~6e-4 of that (fresh pixels are not the calibration images these members were sensitised
    # on); the probabilities the detector reports are checked tightly below
    report = export_onnx(model, spec, tmp_path / "dfdc2.onnx", verify_batches=(1,), tolerance=1e-3)
    sess = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"] and len(sess.get_outputs()) == 1
    import onnx

    graph = onnx.load(str(report.path)).graph   # traced one member at a time, then joined side by side
    assert {n.name.split("/")[0] for n in graph.node if n.name.startswith("m")} >= {"m0", "m1"}
    assert [n.op_type for n in graph.node if n.op_type == "Concat" and "ens/z" in n.output] == ["Concat"]
    np.testing.assert_allclose(_onnx_prob(report.path, x), want, atol=5e-5)


def test_load_checkpoint_auto_detects_published_files_for_the_torch_runner(dfdc_pair):
    refs, paths = dfdc_pair
    model, spec, _ = load_checkpoint(paths[0])
    assert spec.provenance["source_layout"] == "dfdc-selimsef"
    x = _x(380, seed=3, lo=-2.0, hi=2.0)
    want = R.dfdc_prob(refs[0], torch.from_numpy(x))
    assert abs(want[0] - want[1]) > 0.5
    np.testing.assert_allclose(_ours(model, x), want, atol=2e-5)


def test_wrong_recipe_and_mixed_ensembles_are_refused_clearly(dfdc_pair, sbi_b0):
    _, dfdc_paths = dfdc_pair
    _, sbi_path = sbi_b0
    with pytest.raises(PublishedError, match=r"keeps its weights under 'model'.*state_dict.*use --from dfdc-selimsef"):
        load_published([dfdc_paths[0]], "sbi")
    with pytest.raises(PublishedError, match="dfdc-selimsef checkpoint keeps its weights under 'state_dict'.*"
                                             "looks like a sbi checkpoint"):
        load_published([dfdc_paths[0], sbi_path], "dfdc-selimsef")
    with pytest.raises(PublishedError, match="unknown published recipe 'dfdc'"):
        load_published([dfdc_paths[0]], "dfdc")


def test_cli_exports_a_published_checkpoint(sbi_b0, tmp_path):
    _, path = sbi_b0
    out = tmp_path / "cli.onnx"
    proc = subprocess.run([sys.executable, "-m", "fakewatch", "export", "onnx", str(path), "--from", "sbi",
                           "-o", str(out), "--no-simplify"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Self-Blended Images" in proc.stdout and "verified" in proc.stdout
    doc = json.loads(out.with_name("cli.onnx.json").read_text())["fakewatch_spec"]
    assert doc["schema_version"] == 2 and doc["roi_rule"] == "sbi"


# ----------------------------------------------------------------------------- preprocessing parity
def _frame(seed: int, h: int = 480, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2_blur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return base


def cv2_blur(img):
    import cv2

    return cv2.GaussianBlur(img, (7, 7), 2.0)   # smooth, photo-like content so interpolation modes differ


def _pixels(x: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Our float input back to uint8 RGB pixels (exact: the affine map is invertible at these values)."""
    m = np.asarray(spec.mean, np.float64).reshape(3, 1, 1)
    s = np.asarray(spec.std, np.float64).reshape(3, 1, 1)
    return np.rint((x.astype(np.float64) * s + m) * 255.0).astype(np.int64).transpose(1, 2, 0)


# faces near the middle, touching an edge, small (upscaled) and large (downscaled), fractional detector boxes
BOXES = [(250.3, 120.7, 140.2, 171.9), (0.0, 5.5, 90.4, 120.0), (560.2, 400.1, 79.9, 79.6),
         (100.6, 30.2, 420.0, 440.7), (300.0, 200.0, 37.3, 52.8)]


@pytest.mark.parametrize("box", BOXES)
def test_dfdc_crop_and_isotropic_resize_are_pixel_exact(box):
    spec, _ = _spec_of("dfdc-selimsef")
    frame = _frame(7)
    x, y, w, h = box
    ours = preprocess([frame], [face_box(x, y, w, h, spec, frame.shape[1], frame.shape[0])], spec)[0]
    theirs = R.dfdc_input(frame, (x, y, x + w, y + h), 380)
    assert np.array_equal(_pixels(ours, spec), theirs.astype(np.int64))
    np.testing.assert_allclose(ours, R.to_model_input(theirs, spec.mean, spec.std), atol=2e-6)


@pytest.mark.parametrize("box", BOXES)
def test_sbi_crop_and_resize_are_pixel_exact(box):
    spec, _ = _spec_of("sbi")
    frame = _frame(8)
    x, y, w, h = box
    ours = preprocess([frame], [face_box(x, y, w, h, spec, frame.shape[1], frame.shape[0])], spec)[0]
    theirs = R.sbi_input(frame, (x, y, x + w, y + h), 380)
    assert np.array_equal(_pixels(ours, spec), theirs.astype(np.int64))
    np.testing.assert_allclose(ours, theirs.transpose(2, 0, 1) / np.float32(255.0), atol=1e-6)


def test_deepfakebench_cubic_resize_and_normalisation_are_exact():
    spec, _ = _spec_of("deepfakebench-effb4")
    face = _frame(9, 173, 151)
    ours = preprocess([face], [(0, 0, face.shape[1], face.shape[0])], spec)[0]
    theirs = R.dfb_input(face, 256)
    assert np.array_equal(_pixels(ours, spec), theirs.astype(np.int64))
    np.testing.assert_allclose(ours, R.to_model_input(theirs, spec.mean, spec.std), atol=2e-6)
    linear = spec.replace(resize="linear")   # control: the rule matters on this content
    assert not np.array_equal(preprocess([face], [(0, 0, 151, 173)], linear)[0], ours)


def _spec_of(name: str):
    rec = RECIPES[name]
    from fakewatch.core.checkpoint import default_spec

    spec = default_spec(rec.default_variant, mean=rec.mean, std=rec.std, input_size=(rec.input_size,) * 2,
                        resize=rec.resize, roi_rule=rec.roi_rule, roi_margin=rec.roi_margin)
    return spec, rec


# ----------------------------------------------------------------------------- contract compatibility
def test_contract_v1_documents_still_load_and_new_rules_write_v2():
    spec, _ = _spec_of("sbi")
    d = spec.to_dict()
    assert d["schema_version"] == 2 and ModelSpec.from_dict(d) == spec
    plain = spec.replace(resize="linear", roi_rule="square").to_dict()
    assert plain["schema_version"] == 1 and "resize" not in plain     # older fakewatch can still read it
    assert ModelSpec.from_dict(plain).resize == "linear"
    with pytest.raises(ContractError, match=r"unknown field\(s\) \['roi_rule'\]"):
        ModelSpec.from_dict({**plain, "roi_rule": "sbi"})              # v1 cannot carry v2 fields
    with pytest.raises(ContractError, match="resize must be one of"):
        ModelSpec.from_dict({**d, "resize": "lanczos"})


def test_cuda_kernel_refuses_rules_it_does_not_implement():
    from fakewatch.runtime.cuda_preprocess import check_kernel_supports

    spec, _ = _spec_of("dfdc-selimsef")
    with pytest.raises(ValueError, match="implements resize 'linear' only.*'isotropic_pad'"):
        check_kernel_supports(spec)
    check_kernel_supports(_spec_of("sbi")[0])   # SBI's stretch is the kernel's bilinear: allowed


# ----------------------------------------------------------------------------- the real shapes (slow)
def _imagenet_pixels(size: int, n: int = 2, seed: int = 0) -> np.ndarray:
    """[0, 1] pixels through ImageNet mean/std: what the DFDC contract feeds, and what export's verify draws."""
    from fakewatch.core.contract import IMAGENET_MEAN, IMAGENET_STD

    u = np.random.default_rng(seed).uniform(0.0, 1.0, (n, 3, size, size))
    return ((u - np.reshape(IMAGENET_MEAN, (1, 3, 1, 1))) / np.reshape(IMAGENET_STD, (1, 3, 1, 1))).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sbi", "deepfakebench-effb4", "dfdc-selimsef"])
def test_published_full_size_checkpoints_export_exactly(kind, tmp_path):
    if kind == "sbi":
        x = torch.from_numpy(_x(380, n=4))
        ref = R.sensitize_sbi(R.randomize_(R.SbiDetector("efficientnet-b4"), 5, x), x)
        path, prob = R.save_sbi(ref, tmp_path / "sbi.tar"), R.sbi_prob
        x = _x(380)
    elif kind == "deepfakebench-effb4":
        x = torch.from_numpy(_x(256, n=4, lo=-1.0))
        ref = R.sensitize_dfb(R.randomize_(R.DfbDetector("efficientnet-b4"), 6, x), x)
        path, prob = R.save_dfb(ref, tmp_path / "effnb4_best.pth"), R.dfb_prob
        x = _x(256, lo=-1.0)
    else:
        # BatchNorm statistics from 4 images of the distribution export's own check draws from, with a variance
        # floor relative to each layer (an absolute +0.5 made B7's pooled features of two images differ by 2e-7
        # relative: below fp32 resolution, so the sensitised head scored rounding noise, 0.4 logit apart even
        # between the reference's own fp32 and fp64 forwards)
        x = torch.from_numpy(_imagenet_pixels(380, n=4))
        ref = R.sensitize_dfdc(R.randomize_(R.DeepFakeClassifier("tf_efficientnet_b7"), 7, x, var_floor=0.1), x)
        path = R.save_dfdc(ref, tmp_path / "final_111_DeepFakeClassifier_tf_efficientnet_b7_ns_0_36")
        prob, x = R.dfdc_prob, _imagenet_pixels(380)
    model, spec, _ = load_published([path])
    assert spec.provenance["published"] == kind
    assert spec.variant == ("tf-b7" if kind == "dfdc-selimsef" else "tf-b4")
    want = prob(ref, torch.from_numpy(x))
    assert abs(want[0] - want[1]) > 0.5
    # the reference must be well conditioned, or no export could match it: its own fp64 forward agrees
    exact = prob(copy.deepcopy(ref).double(), torch.from_numpy(x).double())
    np.testing.assert_allclose(want, exact, atol=2e-5)
    report = export_onnx(model, spec, tmp_path / "m.onnx", verify_batches=(1,))
    np.testing.assert_allclose(_onnx_prob(report.path, x), exact, atol=1e-4)
