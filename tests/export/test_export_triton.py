"""`fakewatch export triton`: a model repository whose config Triton's own protobuf parses, contract included."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fakewatch.cli import main
from fakewatch.core.contract import load_spec
from fakewatch.core.triton import spec_from_config
from fakewatch.export.triton_repo import TritonExportOptions, export_model, validate_config

DEMO = Path(__file__).resolve().parents[2] / "runtime" / "assets" / "demo" / "demo_model.onnx"


def test_demo_model_repository_layout_and_config(tmp_path):
    opts = TritonExportOptions(max_batch=8, preferred_batch=(4, 8), max_queue_delay_us=500, instances=2,
                               kind="KIND_CPU")
    m = export_model(DEMO, tmp_path / "repo", name="deepfake", opts=opts)
    assert m.validated and m.platform == "onnxruntime"
    assert m.model_file == tmp_path / "repo" / "deepfake" / "1" / "model.onnx"
    assert m.model_file.read_bytes() == DEMO.read_bytes()
    cfg = validate_config(m.config.read_text())
    assert cfg["name"] == "deepfake" and cfg["platform"] == "onnxruntime_onnx" and cfg["max_batch_size"] == 8
    assert cfg["input"][0]["name"] == "input" and [int(d) for d in cfg["input"][0]["dims"]] == [3, 112, 112]
    assert cfg["input"][0]["data_type"] == "TYPE_FP32" and cfg["input"][0]["format"] == "FORMAT_NCHW"
    assert cfg["output"][0]["name"] == "logit" and [int(d) for d in cfg["output"][0]["dims"]] == [1]
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert int(cfg["dynamic_batching"]["max_queue_delay_microseconds"]) == 500
    assert cfg["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    assert spec_from_config(cfg) == load_spec(DEMO)        # the whole contract, provenance included


def test_several_models_and_the_cli(tmp_path, capsys):
    other = tmp_path / "second.onnx"
    shutil.copyfile(DEMO, other)
    shutil.copyfile(str(DEMO) + ".json", str(other) + ".json")
    repo = tmp_path / "repo"
    assert main(["export", "triton", str(DEMO), str(other), "-o", str(repo), "--max-batch", "4",
                 "--kind", "KIND_CPU"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in repo.iterdir()) == ["demo_model", "second"]
    assert f"-v {repo.resolve()}:/models" in out and "tritonserver --model-repository=/models" in out
    assert "parsed by Triton's ModelConfig protobuf" in out
    cfg = validate_config((repo / "second" / "config.pbtxt").read_text())
    assert cfg["max_batch_size"] == 4 and cfg["dynamic_batching"]["preferred_batch_size"] == [2, 4]
    # a second export into the same repository refuses to overwrite, naming the way out
    assert main(["export", "triton", str(DEMO), "-o", str(repo)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "triton", str(DEMO), "-o", str(repo), "--overwrite", "--max-batch", "2"]) == 0
    assert validate_config((repo / "demo_model" / "config.pbtxt").read_text())["max_batch_size"] == 2


def test_refuses_fixed_batch_onnx_and_bad_options(tmp_path):
    import onnx

    m = onnx.load(str(DEMO))
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    fixed = tmp_path / "fixed.onnx"
    onnx.save(m, str(fixed))
    with pytest.raises(ValueError, match="fixed batch of 4"):
        export_model(fixed, tmp_path / "repo")
    with pytest.raises(ValueError, match=r"--preferred-batch \[32\] must lie in 1..16"):
        TritonExportOptions(preferred_batch=(32,))
    with pytest.raises(ValueError, match="platform"):
        export_model(DEMO, tmp_path / "repo", opts=TritonExportOptions(platform="tensorrt"))
    with pytest.raises(ValueError, match="does not parse as Triton's ModelConfig"):
        validate_config('name: "x"\nmax_batch_size: "eight"\n')


def test_with_detector_exports_blazeface_with_its_decoding(tmp_path, capsys):
    import json

    from fakewatch.core.triton import detector_section_from_config

    pytest.importorskip("tritonclient.grpc")
    face = DEMO.parents[1] / "face"
    repo = tmp_path / "repo"
    assert main(["export", "triton", str(DEMO), "--name", "deepfake", "--with-detector", "blazeface-short",
                 "-o", str(repo), "--kind", "KIND_CPU"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in repo.iterdir()) == ["deepfake", "face_detector"]
    assert "--face-detector grpc://HOST:8001/face_detector" in out
    det = repo / "face_detector"
    assert (det / "1" / "model.onnx").read_bytes() == (face / "blazeface_short.onnx").read_bytes()
    cfg = validate_config((det / "config.pbtxt").read_text())
    assert [int(d) for d in cfg["input"][0]["dims"]] == [3, 128, 128]
    assert [int(d) for d in cfg["output"][0]["dims"]] == [896 * 17]
    sidecar = json.loads((face / "blazeface_short.onnx.json").read_text())
    assert detector_section_from_config(cfg) == sidecar["face_detector"]     # anchors, NMS, alignment: all of it
    assert spec_from_config(cfg) == load_spec(face / "blazeface_short.onnx")
    # the classifier's config carries no detector section; a wrong detector choice is one clear error
    with pytest.raises(Exception, match="not a face detector"):
        detector_section_from_config(validate_config((repo / "deepfake" / "config.pbtxt").read_text()))
    assert main(["export", "triton", str(DEMO), "--with-detector", "nope.onnx", "-o", str(tmp_path / "r2")]) == 1
    assert "use blazeface or blazeface-short or a face detector model file" in capsys.readouterr().err
    assert main(["export", "triton", str(DEMO), "--name", "face_detector", "--with-detector", "-o",
                 str(tmp_path / "r3")]) == 1
    assert "--detector-name 'face_detector' is also a --name" in capsys.readouterr().err
