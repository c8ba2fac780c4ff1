"""fakewatch engine, pure parts: batch profiles, Q/DQ inspection, version->flags table, sidecar, compat check."""
from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from fakewatch.core.contract import read_sidecar, read_sidecar_doc
from fakewatch.export.engine import (
    TRT_CAPABILITIES,
    BatchProfile,
    BuildOptions,
    EngineBuildError,
    EngineCompatError,
    OnnxPrecisionInfo,
    ParserErrorInfo,
    check_engine_compat,
    engine_build_info,
    format_cc,
    format_parser_errors,
    inspect_onnx_precision,
    make_build_plan,
    parse_profile,
    rebuild_command,
    write_engine_sidecar,
)

from . import tensorrt_fixtures as M  # noqa: E402

FP32 = OnnxPrecisionInfo()
QDQ = OnnxPrecisionInfo(quantize_nodes=5, dequantize_nodes=9)
FP16 = OnnxPrecisionInfo(fp16_tensors=12)


# ----------------------------------------------------------------------------- profiles
@pytest.mark.parametrize("text,expected", [("1:4:8", (1, 4, 8)), ("2", (2, 2, 2)), (" 1:1:16 ", (1, 1, 16)),
                                           (3, (3, 3, 3))])
def test_parse_profile(text, expected):
    p = parse_profile(text)
    assert (p.min, p.opt, p.max) == expected
    assert str(p) == ":".join(map(str, expected))


@pytest.mark.parametrize("text,fragment", [("4:2:8", "MIN <= OPT <= MAX"), ("0:1:2", "1 <= MIN"),
                                           ("1:4", "MIN:OPT:MAX"), ("a:b:c", "whole numbers"),
                                           ("1:2:5000", "above 1024")])
def test_parse_profile_rejects(text, fragment):
    with pytest.raises(EngineBuildError, match=fragment):
        parse_profile(text)


def test_profile_shapes_use_contract_size():
    assert BatchProfile(1, 4, 8).shapes(M.SPEC) == ((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))


# ----------------------------------------------------------------------------- Q/DQ + fp16 inspection (real ONNX)
def test_inspect_fp32_model_has_no_qdq():
    info = inspect_onnx_precision(M.conv_model())
    assert (info.has_qdq, info.has_fp16) == (False, False)


def test_inspect_quantized_model_tensorrt_recipe(tmp_path):
    src = M.save(M.conv_model(), tmp_path / "m.onnx")
    info = inspect_onnx_precision(M.quantize(src, tmp_path / "q.onnx"))
    assert info.has_qdq and info.quantize_nodes >= 2 and info.dequantize_nodes >= 3
    assert info.asymmetric_nodes == () and info.unsigned_nodes == ()


def test_inspect_flags_asymmetric_uint8_quantization(tmp_path):
    src = M.save(M.conv_model(), tmp_path / "m.onnx")
    info = inspect_onnx_precision(M.quantize(src, tmp_path / "q.onnx", symmetric=False, signed=False))
    assert info.unsigned_nodes and info.asymmetric_nodes
    with pytest.raises(EngineBuildError, match="symmetric quantization"):
        make_build_plan("10.3.0", BuildOptions(precision="int8"), info)


def test_inspect_counts_fp16_casts_and_initializers():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    m = M.conv_model()
    m.graph.initializer.append(numpy_helper.from_array(np.zeros(2, np.float16), "h"))
    m.graph.node.append(helper.make_node("Cast", ["logit"], ["l16"], to=TensorProto.FLOAT16))
    assert inspect_onnx_precision(m).fp16_tensors == 2


# ----------------------------------------------------------------------------- version -> flags
def test_trt10_flag_table():
    got = {p: make_build_plan("10.3.0.30", BuildOptions(precision=p), QDQ if p in ("int8", "best") else FP32).flags
           for p in ("fp32", "fp16", "int8", "best")}
    # int8 = INT8 + FP16: the layers the Q/DQ recipe keeps float run in FP16, not FP32
    assert got == {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16"), "best": ("FP16", "INT8")}


@pytest.mark.parametrize("version", ["11.0.0", "11.4.1.2", "12.0.0"])
def test_trt11_never_sets_removed_flags(version):
    removed = TRT_CAPABILITIES[11].removed_flags
    assert {"FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"} <= removed
    valid = [("fp16", FP16), ("best", FP16), ("int8", QDQ), ("best", QDQ)]
    for (precision, info), vc in itertools.product(valid, (False, True)):
        plan = make_build_plan(version, BuildOptions(precision=precision, version_compatible=vc), info)
        assert not set(plan.flags) & removed and plan.strongly_typed
        assert plan.flags == (("VERSION_COMPATIBLE",) if vc else ())
        assert plan.precision == ("int8" if info.has_qdq else "fp16")


def test_trt11_refuses_fp16_from_fp32_onnx_and_says_how():
    with pytest.raises(EngineBuildError, match="strongly typed.*modelopt.onnx.autocast"):
        make_build_plan("11.1.0", BuildOptions(precision="fp16"), FP32)
    with pytest.raises(EngineBuildError, match="would be FP16"):
        make_build_plan("11.1.0", BuildOptions(precision="fp32"), FP16)


def test_int8_needs_qdq_on_every_version():
    for v in ("10.0.1", "11.0.0"):
        with pytest.raises(EngineBuildError, match="Q/DQ.*no QuantizeLinear"):
            make_build_plan(v, BuildOptions(precision="int8"), FP32)
    with pytest.raises(EngineBuildError, match="quantized .*--precision int8"):
        make_build_plan("10.3.0", BuildOptions(precision="fp16"), QDQ)


def test_best_resolves_to_what_is_built():
    assert make_build_plan("10.3.0", BuildOptions(precision="best"), QDQ).precision == "int8"
    # TensorRT 10 would set INT8 with nothing to calibrate it: refused with what to do instead
    for info in (FP32, FP16):
        with pytest.raises(EngineBuildError, match="no Q/DQ nodes.*--precision fp16.*--target tensorrt"):
            make_build_plan("10.3.0", BuildOptions(precision="best"), info)
    assert make_build_plan("11.0.0", BuildOptions(precision="best"), FP16).precision == "fp16"   # no flags on 11


def test_dla_rules():
    with pytest.raises(EngineBuildError, match=r"fixed batch \(min = opt = max\), got --batch 1:4:8; pass --batch 4"):
        make_build_plan("10.3.0", BuildOptions(precision="fp16", dla_core=1), FP32)
    plan = make_build_plan("10.3.0", BuildOptions(precision="fp16", dla_core=1, profile=parse_profile("4")), FP32)
    assert plan.flags == ("FP16", "GPU_FALLBACK") and plan.dla_core == 1
    with pytest.raises(EngineBuildError, match="only FP16 or INT8"):
        make_build_plan("10.3.0", BuildOptions(precision="fp32", dla_core=0, profile=parse_profile("4")), FP32)
    with pytest.raises(EngineBuildError, match="not supported by TensorRT 11"):
        make_build_plan("11.0.0", BuildOptions(precision="fp16", dla_core=0, profile=parse_profile("4")), FP16)


def test_bad_options_and_old_tensorrt():
    with pytest.raises(EngineBuildError, match="0-5"):
        make_build_plan("10.3.0", BuildOptions(opt_level=7), FP32)
    with pytest.raises(EngineBuildError, match="positive"):
        make_build_plan("10.3.0", BuildOptions(workspace_mb=0), FP32)
    with pytest.raises(EngineBuildError, match="too old"):
        make_build_plan("8.6.1", BuildOptions(), FP32)
    assert make_build_plan("10.3.0", BuildOptions(workspace_mb=512), FP32).workspace_bytes == 512 * 2**20


# ----------------------------------------------------------------------------- parser errors
def test_parser_errors_one_per_line_with_node_names():
    text = format_parser_errors("m.onnx", [
        ParserErrorInfo("Unsupported operator Foo", 3, "blocks.1/foo", "Foo", "UNSUPPORTED_NODE"),
        ParserErrorInfo("bad graph", -1)])
    lines = text.splitlines()
    assert lines[1] == "  node 3 'blocks.1/foo' (Foo) [UNSUPPORTED_NODE]: Unsupported operator Foo"
    assert lines[2] == "  graph: bad graph" and "2 error(s)" in lines[0]


# ----------------------------------------------------------------------------- sidecar + compat
def _write_engine(tmp_path, plan_hash=False, **opt):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00plan")  # content is opaque to fakewatch; the sidecar describes it
    options = BuildOptions(precision="fp16", profile=parse_profile(opt.pop("batch", "1:2:4")), **opt)
    plan = make_build_plan("10.3.0.30", options, FP32)
    integrity = {"plan_sha256": hashlib.sha256(b"\x00plan").hexdigest(), "plan_bytes": 5} if plan_hash else {}
    info = engine_build_info(trt_version="10.3.0.30", gpu_name="Orin", compute_capability=(8, 7),
                             onnx_path="m.onnx", onnx_sha256="ab" * 32, plan=plan, options=options,
                             engine_path=engine, build_seconds=41.25, **integrity)
    write_engine_sidecar(engine, M.SPEC, info)
    return engine


def test_sidecar_roundtrip_and_backend_selection(tmp_path):
    from fakewatch.runtime.backends import detect_artifact, load_runner

    engine = _write_engine(tmp_path, dla_core=0, batch="2")
    doc = read_sidecar_doc(engine)
    trt = doc["tensorrt"]
    assert trt["version"] == "10.3.0.30" and trt["compute_capability"] == "8.7" and trt["dla_core"] == 0
    assert trt["flags"] == ["FP16", "GPU_FALLBACK"] and trt["profile"] == {"min": 2, "opt": 2, "max": 2}
    assert trt["build_seconds"] == 41.25 and trt["onnx_sha256"] == "ab" * 32
    assert read_sidecar(engine).precision == "fp16"
    assert detect_artifact(engine).name == "tensorrt-plan"
    runner = load_runner(engine)  # constructing imports no TensorRT and touches no GPU
    assert type(runner).__name__ == "TensorRTRunner" and runner.device == "cuda" and not runner.is_active
    assert engine.read_bytes() == b"\x00plan"  # the plan itself carries no header


def test_compat_ok_and_name_warning(tmp_path):
    doc = read_sidecar_doc(_write_engine(tmp_path))
    assert check_engine_compat(doc, "10.3.0.30", "Orin", (8, 7)) == []
    assert check_engine_compat(doc, "10.3.0.26", "Orin", "8.7") == []  # same major.minor.patch
    warn = check_engine_compat(doc, "10.3.0.30", "Jetson AGX Orin", (8, 7))
    assert len(warn) == 1 and "tuned on Orin" in warn[0]


def test_compat_mismatch_names_both_sides_and_rebuild_command(tmp_path):
    engine = _write_engine(tmp_path, timing_cache=Path("cache.bin"))
    doc = read_sidecar_doc(engine)
    with pytest.raises(EngineCompatError) as err:
        check_engine_compat(doc, "10.7.0.23", "NVIDIA H100 80GB HBM3", (9, 0), engine)
    msg = str(err.value)
    assert "TensorRT 10.3.0.30 for Orin (compute capability 8.7)" in msg
    assert "TensorRT 10.7.0.23 on NVIDIA H100 80GB HBM3 (compute capability 9.0)" in msg
    assert "version that built them" in msg and "GPU architecture" in msg
    assert msg.endswith("fakewatch engine m.onnx -o " + str(engine) + " --precision fp16 --batch 1:2:4 "
                        "--workspace-mb 2048 --opt-level 3 --timing-cache cache.bin")
    with pytest.raises(EngineCompatError, match="GPU architecture"):
        check_engine_compat(doc, "10.3.0.30", "RTX 4090", (8, 9))


def test_compat_version_compatible_engines(tmp_path):
    doc = read_sidecar_doc(_write_engine(tmp_path, version_compatible=True))
    assert check_engine_compat(doc, "10.8.0", "Orin", (8, 7)) == []
    with pytest.raises(EngineCompatError, match="needs TensorRT 10.x >= 10.3.0.30"):
        check_engine_compat(doc, "10.1.0", "Orin", (8, 7))
    with pytest.raises(EngineCompatError, match="needs TensorRT 10.x"):
        check_engine_compat(doc, "11.0.0", "Orin", (8, 7))


def test_compat_without_tensorrt_section():
    with pytest.raises(EngineCompatError, match="no 'tensorrt' section"):
        check_engine_compat({"fakewatch_spec": {}}, "10.3.0", "x", (8, 7), "m.engine")


def test_format_cc_and_rebuild_command():
    assert format_cc((8, 7)) == format_cc("8.7") == format_cc("sm_87") == "8.7"
    assert rebuild_command("a b.onnx", "o.engine", BuildOptions(dla_core=1, version_compatible=True)) == (
        "fakewatch engine 'a b.onnx' -o o.engine --precision fp16 --batch 1:4:8 --workspace-mb 2048 "
        "--opt-level 3 --dla-core 1 --version-compatible")


def test_rebuild_command_keeps_the_device():
    cmd = rebuild_command("m.onnx", "m.engine", BuildOptions(device=1))
    assert cmd.endswith("--device 1")
    assert "--device" not in rebuild_command("m.onnx", "m.engine", BuildOptions())


def test_plan_hash_detects_truncated_or_replaced_plans(tmp_path):
    from fakewatch.core.tensorrt import check_plan_intact, plan_intact

    engine = _write_engine(tmp_path, plan_hash=True, device=1)
    doc = read_sidecar_doc(engine)
    assert doc["tensorrt"]["plan_bytes"] == 5 and doc["tensorrt"]["device"] == 1 and plan_intact(engine)
    check_plan_intact(engine, doc)
    engine.write_bytes(b"\x00pl")                                     # a copy cut short
    with pytest.raises(EngineCompatError, match=r"is 3 bytes but its sidecar recorded 5.*truncated.*--device 1"):
        check_plan_intact(engine, doc)
    assert not plan_intact(engine)
    engine.write_bytes(b"\x00PLAN")                                   # same size, other bytes
    with pytest.raises(EngineCompatError, match="does not match the sha256"):
        check_plan_intact(engine, doc)
    (tmp_path / "legacy").mkdir()
    legacy = _write_engine(tmp_path / "legacy")
    check_plan_intact(legacy, read_sidecar_doc(legacy))               # old sidecars without a hash: unchecked
    assert not plan_intact(legacy)                                     # ... but a cache does not trust them


def test_atomic_write_leaves_old_file_or_new_file(tmp_path, monkeypatch):
    import os

    from fakewatch.core.atomic import atomic_write_bytes

    target = tmp_path / "m.engine"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new-and-longer")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["m.engine"]
