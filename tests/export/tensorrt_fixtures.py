"""Tiny ONNX models for the TensorRT tests, built with onnx.helper (no torch): [N,3,16,16] -> conv -> GAP -> [N,1]."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fakewatch.core.contract import ModelSpec, embed_in_onnx

SPEC = ModelSpec(variant="test", timm_name="test_efficientnet", input_size=(16, 16), roi="full")


def conv_model(seed: int = 0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    fw = numpy_helper.from_array(rng.normal(0, 0.5, (4, 1)).astype(np.float32), "fw")
    fb = numpy_helper.from_array(np.zeros(1, np.float32), "fb")
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv0", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu0"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logit"], name="head"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])], [w, b, fw, fb])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    embed_in_onnx(model, SPEC)
    onnx.checker.check_model(model)
    return model


def save(model, path: Path) -> Path:
    import onnx

    onnx.save(model, str(path))
    return path


def quantize(src: Path, dst: Path, symmetric: bool = True, signed: bool = True) -> Path:
    """onnxruntime quantize_static in the TensorRT recipe (QDQ, QInt8, symmetric) or a deliberately bad variant."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(1)
            self.items = iter([{"input": rng.normal(0, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    qtype = QuantType.QInt8 if signed else QuantType.QUInt8
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=qtype,
                    weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": symmetric})
    return dst
