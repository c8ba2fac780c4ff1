"""The ONNX MAC counter on hand-built graphs with known MACs, and on a real exported EfficientNet."""
from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")
import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fakewatch.benchmarks.macs import count_macs  # noqa: E402


def _init(name: str, shape: tuple[int, ...]):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def _graph_model(batch_dim="N"):
    # x [N,3,32,32] -> Conv 3->8 k3 s1 p1 -> depthwise Conv 8->8 k3 s2 p1 (group 8) -> GAP -> Flatten -> Gemm 8->5
    #   -> MatMul [N,5] x [5,4]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2],
                         group=8),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "wm"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch_dim, 4])],
        [_init("w1", (8, 3, 3, 3)), _init("w2", (8, 1, 3, 3)), _init("wg", (5, 8)), _init("bg", (5,)),
         _init("wm", (5, 4))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_known_macs_per_op_and_total():
    macs = count_macs(_graph_model())
    conv1 = 8 * 32 * 32 * 3 * 3 * 3          # every output element: Cin*k*k MACs
    conv2 = 8 * 16 * 16 * 1 * 3 * 3          # depthwise: Cin/group = 1
    assert macs["Conv"] == conv1 + conv2
    assert macs["Gemm"] == 5 * 8
    assert macs["MatMul"] == 4 * 5
    assert macs["total"] == conv1 + conv2 + 40 + 20


def test_batch_scales_linearly_and_static_batch_works():
    one = count_macs(_graph_model())["total"]
    assert count_macs(_graph_model(), batch=4)["total"] == 4 * one
    assert count_macs(_graph_model(batch_dim=1))["total"] == one


def test_unknown_shapes_are_an_error_not_zero():
    model = _graph_model()
    # a Conv whose weight is a graph input of unknown shape cannot be counted
    model.graph.node[0].input[1] = "w_unknown"
    model.graph.input.append(helper.make_tensor_value_info("w_unknown", TensorProto.FLOAT, None))
    with pytest.raises(ValueError, match="cannot count MACs"):
        count_macs(model)


def test_exported_efficientnet_matches_torch_conv_hooks(tiny_onnx, tiny_spec):
    """The graph walker agrees with MACs counted by torch forward hooks on the same (tiny) model."""
    torch = pytest.importorskip("torch")
    from fakewatch.core.checkpoint import build_model

    model = build_model(tiny_spec, exportable=True)
    total = 0

    def conv_hook(mod, inp, out):
        nonlocal total
        total += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    def linear_hook(mod, inp, out):
        nonlocal total
        total += out.numel() * mod.in_features

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, *tiny_spec.input_size))
    assert total > 0
    assert count_macs(tiny_onnx)["total"] == total
