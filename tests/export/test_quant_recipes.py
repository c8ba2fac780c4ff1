"""INT8 recipes on the tiny test EfficientNet: valid ONNX that runs in ORT, the Q/DQ properties each target needs,
the fidelity gate, and clear refusals of empty/unreadable calibration sources."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402


def _frames_dir(root: Path, n: int = 24) -> Path:
    """Real-looking frames: scikit-image photographs, shifted crops (not random tensors)."""
    skdata = pytest.importorskip("skimage.data")
    root.mkdir(parents=True, exist_ok=True)
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        s = int(min(h, w) * (0.5 + 0.02 * i))
        y, x = (i * 7) % (h - s + 1), (i * 13) % (w - s + 1)
        cv2.imwrite(str(root / f"f{i:03d}.png"), cv2.cvtColor(img[y:y + s, x:x + s], cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    return _frames_dir(tmp_path_factory.mktemp("calib"))


@pytest.fixture(scope="module")
def quantized(tiny_onnx, calib_dir, tmp_path_factory):
    from fakewatch.export.quantize import quantize_onnx

    out = tmp_path_factory.mktemp("q")
    return {t: quantize_onnx(tiny_onnx, out / f"tiny.{t}.onnx", t, [calib_dir], "minmax", calib_frames=16,
                             holdout_frames=8, progress=False) for t in ("cpu", "openvino", "tensorrt")}


def _qdq(path):
    m = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    nodes = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    return m, init, nodes


@pytest.mark.parametrize("target", ["cpu", "openvino", "tensorrt"])
def test_quant_recipe_runs_in_ort_with_contract(quantized, tiny_onnx, target):
    from fakewatch.core.contract import load_spec, read_onnx_spec

    res = quantized[target]
    onnx.checker.check_model(onnx.load(str(res.path)))
    spec = load_spec(res.path)
    assert spec == read_onnx_spec(res.path)            # sidecar and embedded contract agree
    assert spec.precision == "int8" and spec.provenance["quantization"]["target"] == target
    assert spec.provenance["quantization"]["nodes_quantized"] > 0
    s = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    x = np.zeros((3, 3, *spec.input_size), np.float32)
    y = s.run(["logit"], {"input": x})[0]
    assert y.shape == (3, 1) and y.dtype == np.float32 and np.isfinite(y).all()
    m, _, nodes = _qdq(res.path)
    assert len(nodes) > 10
    producers = {o: n.op_type for n in m.graph.node for o in n.output}
    assert producers["logit"] not in ("DequantizeLinear", "QuantizeLinear")   # final score stays float
    doc = json.loads(res.fidelity_json.read_text())
    assert doc["samples"] == 8 and doc["precision"] == "int8" and doc["flip_rate"] == res.fidelity.flip_rate


def test_quant_tensorrt_recipe_is_symmetric_int8(quantized):
    _, init, nodes = _qdq(quantized["tensorrt"].path)
    for n in nodes:
        assert len(n.input) == 3, f"{n.name} has no explicit zero point"
        zp = init[n.input[2]]
        assert zp.dtype == np.int8, f"{n.name}: zero point {zp.dtype}"
        assert not zp.any(), f"{n.name}: zero point not 0 (TensorRT needs symmetric Q/DQ)"
    # weights per-channel: some DequantizeLinear has a 1-D scale longer than 1
    assert any(init[n.input[1]].ndim == 1 and init[n.input[1]].size > 1 for n in nodes
               if n.op_type == "DequantizeLinear" and n.input[1] in init)


@pytest.mark.parametrize("target", ["openvino", "tensorrt"])
def test_quant_recipe_keeps_sigmoid_float(quantized, target):
    m, _, _ = _qdq(quantized[target].path)
    producers = {o: n.op_type for n in m.graph.node for o in n.output}
    consumers: dict[str, list[str]] = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    sig = [n for n in m.graph.node if n.op_type == "Sigmoid"]
    assert sig, "the tiny EfficientNet has SiLU/SE sigmoids"
    for n in sig:
        assert producers.get(n.input[0]) != "DequantizeLinear", f"{n.name} is fed by a DequantizeLinear"
        assert "QuantizeLinear" not in consumers.get(n.output[0], []), f"{n.name} feeds a QuantizeLinear"


@pytest.mark.parametrize("target", ["cpu", "openvino"])
def test_quant_cpu_recipes_activations_are_uint8(quantized, target):
    m, init, nodes = _qdq(quantized[target].path)
    weights = {i.name for i in m.graph.initializer}
    act_q = [n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] not in weights]
    assert act_q
    for n in act_q:
        assert init[n.input[2]].dtype == np.uint8, n.name
    assert any(init[n.input[2]].any() for n in act_q), "expected asymmetric (non-zero) activation zero points"


def _silu_conv_outputs(path) -> tuple[int, int]:
    """(Conv outputs whose real consumers, seen through Q/DQ pairs, are SiLU's Sigmoid+Mul; how many of those
    feed a QuantizeLinear)."""
    m = onnx.load(str(path))
    consumers: dict[str, list] = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def real(name: str) -> set[str]:
        ops: set[str] = set()
        for c in consumers.get(name, []):
            ops |= real(c.output[0]) if c.op_type in ("QuantizeLinear", "DequantizeLinear") else {c.op_type}
        return ops

    silu = [n.output[0] for n in m.graph.node if n.op_type == "Conv" and real(n.output[0]) == {"Sigmoid", "Mul"}]
    return len(silu), sum(any(c.op_type == "QuantizeLinear" for c in consumers[o]) for o in silu)


def test_quant_openvino_recipe_quantizes_conv_inputs_not_outputs(quantized):
    """OpenVINO's int8 fusions want Q/DQ at Conv inputs only: a Conv whose output goes to SiLU (float) gets no
    QuantizeLinear after it, unlike the cpu recipe (which ONNX Runtime needs to form QLinearConv)."""
    ov_res, cpu_res = quantized["openvino"], quantized["cpu"]
    q = ov_res.spec.provenance["quantization"]
    assert q["target"] == "openvino" and q["backend"] == "openvino"
    assert set(q["op_types_quantized"]) <= {"Conv", "Gemm", "Add"} and "Conv" in q["op_types_quantized"]
    assert q["outputs_kept_float_of"] == ["Conv", "Gemm"]
    ov_silu, ov_quantized = _silu_conv_outputs(ov_res.path)
    cpu_silu, cpu_quantized = _silu_conv_outputs(cpu_res.path)
    assert ov_silu == cpu_silu > 0 and ov_quantized == 0 and cpu_quantized > 0
    assert ov_res.path.name == "tiny.openvino.onnx"
    if importlib.util.find_spec("openvino") is not None:
        assert ov_res.fidelity.evaluated_with.startswith("openvino ")
    assert quantized["cpu"].fidelity.evaluated_with.startswith("onnxruntime ")


def test_quant_default_output_names_follow_the_recipe(tiny_onnx, calib_dir, tmp_path):
    import shutil

    from fakewatch.core.contract import sidecar_path
    from fakewatch.export.quantize import RECIPES, quantize_onnx

    src = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, src)
    shutil.copy(sidecar_path(tiny_onnx), sidecar_path(src))
    res = quantize_onnx(src, None, "openvino", [calib_dir], calib_frames=8, holdout_frames=4, progress=False)
    assert res.path == tmp_path / "m.int8-ov.onnx" and res.path.is_file()
    assert {t: r.suffix for t, r in RECIPES.items()} == {"cpu": ".int8.onnx", "openvino": ".int8-ov.onnx",
                                                         "tensorrt": ".int8-trt.onnx"}


def test_quant_cli_targets_are_the_recipes():
    from fakewatch.export.cli import QUANT_TARGETS
    from fakewatch.export.quantize import RECIPES

    assert set(QUANT_TARGETS) == set(RECIPES)


def test_quant_flip_gate_fails_and_keeps_fp32(tiny_onnx, calib_dir, tmp_path):
    import shutil

    from fakewatch.core.contract import load_spec, write_sidecar
    from fakewatch.export.calibration import collect_frames
    from fakewatch.export.fidelity import run_onnx
    from fakewatch.export.quantize import QuantizationError, quantize_onnx

    # A random tiny net scores every frame alike; put the contract threshold at the median FP32 score of the
    # frames so decisions are balanced and INT8 noise flips some of them (a rate > 0 to gate below).
    model = tmp_path / "fp32.onnx"
    shutil.copy(tiny_onnx, model)
    spec = load_spec(tiny_onnx)
    logits = run_onnx(model, collect_frames([calib_dir], spec, 24, progress=False).inputs, spec)[:, 0]
    write_sidecar(model, spec.replace(threshold=float(1 / (1 + np.exp(-np.median(logits))))))
    before = model.read_bytes()
    res = quantize_onnx(model, tmp_path / "m.onnx", "tensorrt", [calib_dir], "minmax", calib_frames=8,
                        holdout_frames=16, progress=False)
    rate = res.fidelity.flip_rate
    assert rate > 0.0, res.fidelity.summary()
    tiny_onnx = model
    out = tmp_path / "gated.onnx"
    with pytest.raises(QuantizationError, match="fidelity gate failed"):
        quantize_onnx(tiny_onnx, out, "tensorrt", [calib_dir], "minmax", calib_frames=8, holdout_frames=16,
                      max_flip_rate=rate / 2, progress=False)
    assert not out.exists() and not Path(str(out) + ".json").exists()
    assert json.loads(Path(str(out) + ".fidelity.json").read_text())["passed"] is False
    assert tiny_onnx.read_bytes() == before
    ok = quantize_onnx(tiny_onnx, out, "tensorrt", [calib_dir], "minmax", calib_frames=8, holdout_frames=16,
                       max_flip_rate=rate, progress=False)
    assert ok.path.exists() and ok.fidelity.passed


def test_quant_calibration_refuses_bad_sources(tiny_spec, tmp_path):
    from fakewatch.export.calibration import CalibrationError, collect_frames

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CalibrationError, match="holds no images"):
        collect_frames([empty], tiny_spec, 4, progress=False)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(CalibrationError, match="cannot be decoded"):
        collect_frames([bad], tiny_spec, 4, progress=False)
    vid = tmp_path / "bad.mp4"
    vid.write_bytes(b"\x00" * 64)
    with pytest.raises(CalibrationError, match="video"):
        collect_frames([vid], tiny_spec, 4, progress=False)
    with pytest.raises(CalibrationError, match="does not exist"):
        collect_frames([tmp_path / "nope" / "clip.mp4"], tiny_spec, 4, progress=False)
    with pytest.raises(CalibrationError, match="no .* sources"):
        collect_frames([], tiny_spec, 4, progress=False)


def test_quant_face_roi_without_faces_is_refused(calib_dir, tmp_path):
    from fakewatch.core.checkpoint import default_spec
    from fakewatch.export.calibration import CalibrationError, collect_frames

    spec = default_spec("test", roi="face")
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(3):
        cv2.imwrite(str(blank / f"{i}.png"), np.full((120, 160, 3), 90 + i, np.uint8))
    with pytest.raises(CalibrationError, match="found nothing to crop"):
        collect_frames([blank], spec, 4, progress=False)


def test_quant_calibration_matches_runtime_preprocessing(tiny_spec, calib_dir):
    from fakewatch.core.preprocess import preprocess
    from fakewatch.core.roi import RoiExtractor
    from fakewatch.export.calibration import collect_frames, split_holdout

    fs = collect_frames([calib_dir], tiny_spec, 6, progress=False)
    assert len(fs) == 6
    img = cv2.imread(fs.origins[0])
    ref = preprocess([img], RoiExtractor(tiny_spec)(img), tiny_spec)
    np.testing.assert_array_equal(fs.inputs[0], ref[0])
    cal, hold = split_holdout(fs, 2)
    assert len(cal) == 4 and len(hold) == 2 and not set(cal.origins) & set(hold.origins)


def test_quant_fp16_keeps_float32_io(tiny_onnx, calib_dir, tmp_path):
    pytest.importorskip("onnxconverter_common")
    from fakewatch.core.contract import load_spec
    from fakewatch.export.fp16 import convert_fp16

    res = convert_fp16(tiny_onnx, tmp_path / "t.fp16.onnx", holdout_inputs=[calib_dir], holdout_frames=8,
                       progress=False)
    m = onnx.load(str(res.path))
    assert [i.type.tensor_type.elem_type for i in m.graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in m.graph.output] == [onnx.TensorProto.FLOAT]
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    assert load_spec(res.path).precision == "fp16"
    assert res.fidelity.samples == 8 and res.fidelity.max_abs_diff < 0.05


def test_quant_cli_quantize_and_gate_exit_code(tiny_onnx, calib_dir, tmp_path, capsys):
    from fakewatch.cli import main

    out = tmp_path / "cli.int8.onnx"
    rc = main(["export", "quantize", str(tiny_onnx), "--target", "cpu", "--calib", str(calib_dir),
               "--calib-frames", "8", "--holdout-frames", "8", "-o", str(out)])
    assert rc == 0 and out.exists()
    assert "fidelity" in capsys.readouterr().out
    rc = main(["export", "quantize", str(tiny_onnx), "--target", "cpu", "--calib", str(tmp_path / "missing"),
               "-o", str(tmp_path / "x.onnx")])
    assert rc == 1 and "does not exist" in capsys.readouterr().err


def test_fidelity_auc_skips_unlabelled_and_needs_both_classes():
    from fakewatch.export.fidelity import auc

    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.0, 1.0, 1.0])) == 0.75
    assert auc(np.array([0.3, 0.3, 0.9]), np.array([0.0, 1.0, np.nan])) == 0.5    # tie, NaN label ignored
    assert auc(np.array([0.1, 0.2]), np.array([1.0, np.nan])) is None
