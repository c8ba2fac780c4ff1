"""Small, exact ONNX graph rewrites applied at export (verification against torch runs after them)."""
from __future__ import annotations

from typing import Any


def reduce_mean_to_global_pool(proto: Any) -> int:
    """Replace spatial ``ReduceMean(axes=[2,3], keepdims=1)`` on 4-D tensors with ``GlobalAveragePool``.

    timm's squeeze-excitation pools with ``x.mean((2, 3), keepdim=True)``, which exports as ReduceMean. The result is
    identical, but ONNX Runtime has an int8 kernel for GlobalAveragePool (QLinearGlobalAveragePool) and none for
    ReduceMean, so each SE block otherwise drops out of int8 with a Q/DQ pair around it. Measured on B0 (cpu INT8
    recipe, batch 8): 1.29x -> 1.50x FP32 throughput. Returns the number of nodes rewritten.
    """
    from onnx import helper, shape_inference

    inferred = shape_inference.infer_shapes(proto)
    rank = {vi.name: len(vi.type.tensor_type.shape.dim)
            for vi in list(inferred.graph.value_info) + list(inferred.graph.input)}
    nodes = proto.graph.node
    rewritten = 0
    for i, node in enumerate(list(nodes)):
        if node.op_type != "ReduceMean" or len(node.input) != 1:   # opset >= 18 passes axes as an input
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes")
        if (rank.get(node.input[0]) == 4 and attrs.get("keepdims", 1) == 1 and axes is not None
                and sorted(int(a) % 4 for a in axes) == [2, 3]):
            gap = helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=node.name or None)
            nodes.remove(nodes[i])
            nodes.insert(i, gap)
            rewritten += 1
    return rewritten
