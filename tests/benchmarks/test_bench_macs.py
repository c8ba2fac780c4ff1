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


def _torch_hook_macs(model, size) -> int:
    torch = pytest.importorskip("torch")
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
        model(torch.zeros(1, 3, *size))
    return total


def test_exported_efficientnet_matches_torch_conv_hooks(tiny_onnx, tiny_spec):
    """The graph walker agrees with MACs counted by torch forward hooks on the same (tiny) model."""
    pytest.importorskip("torch")
    from fakewatch.core.checkpoint import build_model

    total = _torch_hook_macs(build_model(tiny_spec, exportable=True), tiny_spec.input_size)
    assert total > 0
    assert count_macs(tiny_onnx)["total"] == total


def test_tf_same_padding_graphs_are_counted_from_one_onnxruntime_run(tmp_path, monkeypatch):
    """timm tf_* models pad by amounts the graph computes (static inference gives up): counted all the same."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    pytest.importorskip("onnxruntime")
    from fakewatch.benchmarks import macs as macs_mod
    from fakewatch.core.checkpoint import build_model, default_spec
    from fakewatch.export.onnx_export import export_onnx

    spec = default_spec("tf-b0", input_size=(64, 64))
    model = build_model(spec, exportable=True)
    path = export_onnx(model, spec, tmp_path / "tf_b0.onnx", verify_batches=(1,)).path
    assert count_macs(path)["total"] == _torch_hook_macs(model, (64, 64))
    monkeypatch.setattr(macs_mod, "_shapes_by_running", lambda model, names: {})
    with pytest.raises(ValueError, match="cannot count MACs"):   # what static inference alone manages
        count_macs(path)
