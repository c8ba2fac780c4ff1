"""Count multiply-accumulates (MACs) of an ONNX model by walking its graph with inferred shapes.

Only the ops that dominate an EfficientNet's cost are counted: Conv, Gemm and MatMul (one MAC = one multiply +
one add). Elementwise ops (BN folded into Conv by export, SiLU, sigmoid, SE multiply,
add), pooling and resizing are ignored; for EfficientNets they are well under 1 % of the total. Counts are for one
image (batch 1): the batch dimension is bound to 1 before shape inference. Quantized graphs (QLinearConv,
ConvInteger, MatMulInteger, QGemm) are counted like their float ops so INT8 rows report the same MACs.

Why ONNX and not torch hooks: it counts exactly the graph every backend runs (after export and simplification),
and it needs no torch, so it works on a Jetson with only onnx installed.

Graphs whose shapes depend on computed values defeat static shape inference: timm's ``tf_*`` models pad each conv
by an amount the graph computes from the input's shape (TF "same"). For those float Conv/Gemm/MatMul nodes the
shapes are read from one ONNX Runtime run on a zero batch, when onnxruntime is installed.
"""
from __future__ import annotations

from math import prod
from pathlib import Path
from typing import Any

_CONV_OPS = {"Conv", "QLinearConv", "ConvInteger"}
_MATMUL_OPS = {"MatMul", "MatMulInteger", "QLinearMatMul"}
_GEMM_OPS = {"Gemm", "QGemm"}


def _dims(value_info: Any) -> list[int] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            return None  # symbolic dim left after binding the batch: cannot count this node
    return dims


def _bind_batch(model: Any, batch: int) -> None:
    """Replace symbolic (dynamic) dims of graph inputs with ``batch`` so shape inference yields numbers."""
    initializers = {init.name for init in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        for d in inp.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = batch
    # drop stale intermediate shapes (they may carry the symbolic batch) and re-infer
    del model.graph.value_info[:]
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()


def count_macs(path_or_model: str | Path | Any, batch: int = 1) -> dict[str, int]:
    """MACs per op type and in total, for ``batch`` images. Raises ValueError when shapes cannot be inferred."""
    import onnx
    from onnx import shape_inference

    if isinstance(path_or_model, (str, Path)):
        model = onnx.load(str(path_or_model))
    else:
        model = onnx.ModelProto()
        model.CopyFrom(path_or_model)
    _bind_batch(model, batch)
    model = shape_inference.infer_shapes(model, data_prop=True)

    shapes: dict[str, list[int] | None] = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        shapes[vi.name] = _dims(vi)
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)

    per_op: dict[str, int] = {}
    unknown: list[str] = []
    for node in model.graph.node:
        op = node.op_type
        if op not in _CONV_OPS | _MATMUL_OPS | _GEMM_OPS:
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            unknown.append(f"{op} {node.name or node.output[0]}")
            continue
        per_op[op] = per_op.get(op, 0) + macs
    if unknown:
        ran = _shapes_by_running(model, sorted({t for n in model.graph.node if n.op_type in _FLOAT_OPS
                                                for t in (n.input[0], n.output[0]) if not shapes.get(t)}))
        if ran:
            shapes.update(ran)
            per_op, unknown = {}, []
            for node in model.graph.node:
                if node.op_type in _CONV_OPS | _MATMUL_OPS | _GEMM_OPS:
                    macs = _node_macs(node, shapes)
                    if macs is None:
                        unknown.append(f"{node.op_type} {node.name or node.output[0]}")
                    else:
                        per_op[node.op_type] = per_op.get(node.op_type, 0) + macs
    if unknown:
        raise ValueError(f"cannot count MACs: no inferred shapes for {len(unknown)} node(s), e.g. {unknown[:3]}")
    per_op["total"] = sum(per_op.values())
    return per_op


_FLOAT_OPS = {"Conv", "Gemm", "MatMul"}


def _shapes_by_running(model: Any, names: list[str]) -> dict[str, list[int]]:
    """Output shapes of ``names`` from one ONNX Runtime run on zeros ({} when the graph cannot be run so: no
    onnxruntime, an input of unknown shape, a graph over 2 GiB)."""
    if not names:
        return {}
    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        have = {o.name for o in probe.graph.output}
        probe.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                  for n in names if n not in have)
        initializers = {i.name for i in probe.graph.initializer}
        feeds = {}
        for inp in probe.graph.input:
            if inp.name in initializers:
                continue
            dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            if not dims or min(dims) <= 0:
                return {}
            feeds[inp.name] = np.zeros(dims, helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL   # keep every named output
        session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return {n: list(v.shape) for n, v in zip(names, session.run(names, feeds))}
    except Exception:  # noqa: BLE001 - the static error below is the one to report
        return {}


def _node_macs(node: Any, shapes: dict[str, list[int] | None]) -> int | None:
    op = node.op_type
    if op in _CONV_OPS:
        # weight is input 1 for Conv/ConvInteger, input 3 for QLinearConv (x, x_scale, x_zp, w, ...)
        w_name = node.input[3] if op == "QLinearConv" else node.input[1]
        w, y = shapes.get(w_name), shapes.get(node.output[0])
        if not w or not y:
            return None
        # y = [N, Cout, *spatial]; w = [Cout, Cin/groups, *kernel]: each output element needs Cin/g * k MACs
        return prod(y) * prod(w[1:])
    if op in _GEMM_OPS:
        a = shapes.get(node.input[0])
        y = shapes.get(node.output[0])
        if not a or not y:
            return None
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        k = a[0] if trans_a else a[1]
        return prod(y) * k
    # MatMul family: y = a @ b, K = last dim of a (QLinearMatMul: a is input 0 too)
    a = shapes.get(node.input[0])
    y = shapes.get(node.output[0])
    if not a or not y:
        return None
    return prod(y) * a[-1]
