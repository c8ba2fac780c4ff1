"""An ensemble's ONNX graph built member by member: each member exported on its own, then placed side by side.

Tracing the whole ensemble at once (``core.published.make_ensemble``) needs several copies of every member's
weights in memory at the same time: the DFDC winner's 7 x B7 passed 19.9 GB of RSS within 4 minutes on a 24 GB
machine (killed; docs/published-detectors.md). One member at a time peaks at one B7's export; the members' graphs
are then joined here: one input feeding every member, their fake logits concatenated to ``[N, M]``, and the same
tail as ``MeanProbEnsemble.forward``: ``logsumexp_i logsigmoid(z_i) - logsumexp_i logsigmoid(-z_i)``, i.e.
``logit(mean_i sigmoid(z_i))``, spelled with ops that never take ``log(0)``. export_onnx verifies the joined graph
against the torch ensemble like any other export.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence


def _log_sigmoid(nodes: list, v: str, out: str) -> None:
    """``min(v, 0) - log(1 + exp(-|v|))``: finite for every finite ``v``."""
    from onnx import helper

    nodes += [
        helper.make_node("Min", [v, "ens/zero"], [f"{out}/min"]),
        helper.make_node("Abs", [v], [f"{out}/abs"]),
        helper.make_node("Neg", [f"{out}/abs"], [f"{out}/nabs"]),
        helper.make_node("Exp", [f"{out}/nabs"], [f"{out}/exp"]),
        helper.make_node("Add", [f"{out}/exp", "ens/one"], [f"{out}/1p"]),
        helper.make_node("Log", [f"{out}/1p"], [f"{out}/log"]),
        helper.make_node("Sub", [f"{out}/min", f"{out}/log"], [out]),
    ]


def _logsumexp(nodes: list, a: str, out: str) -> None:
    """Over the members (axis 1), keepdims: ``max + log(sum(exp(a - max)))``."""
    from onnx import helper

    nodes += [
        helper.make_node("ReduceMax", [a], [f"{out}/max"], axes=[1], keepdims=1),   # opset 17: axes attribute
        helper.make_node("Sub", [a, f"{out}/max"], [f"{out}/shift"]),
        helper.make_node("Exp", [f"{out}/shift"], [f"{out}/exp"]),
        helper.make_node("ReduceSum", [f"{out}/exp", "ens/axis1"], [f"{out}/sum"], keepdims=1),
        helper.make_node("Log", [f"{out}/sum"], [f"{out}/log"]),
        helper.make_node("Add", [f"{out}/max", f"{out}/log"], [out]),
    ]


def join_members(members: Sequence[Any], input_name: str, output_name: str) -> Any:
    """One ModelProto from member ModelProtos that share one input and one ``[N, 1]`` output name."""
    import numpy as np
    from onnx import compose, helper, numpy_helper

    first = members[0]
    graph_input = first.graph.input[0]
    nodes: list = []
    initializers: list = []
    logits: list[str] = []
    for i, member in enumerate(members):
        prefixed = compose.add_prefix(member, f"m{i}/")
        inner_in = f"m{i}/{input_name}"
        for node in prefixed.graph.node:
            node.input[:] = [input_name if name == inner_in else name for name in node.input]
        nodes.extend(prefixed.graph.node)
        initializers.extend(prefixed.graph.initializer)
        logits.append(f"m{i}/{output_name}")
        member.graph.ClearField("initializer")   # the caller's copies are no longer needed: free them early
    initializers += [numpy_helper.from_array(np.zeros((), np.float32), "ens/zero"),
                     numpy_helper.from_array(np.ones((), np.float32), "ens/one"),
                     numpy_helper.from_array(np.array([1], np.int64), "ens/axis1")]
    nodes.append(helper.make_node("Concat", logits, ["ens/z"], axis=1))
    nodes.append(helper.make_node("Neg", ["ens/z"], ["ens/negz"]))
    _log_sigmoid(nodes, "ens/z", "ens/ls_pos")
    _log_sigmoid(nodes, "ens/negz", "ens/ls_neg")
    _logsumexp(nodes, "ens/ls_pos", "ens/lse_pos")
    _logsumexp(nodes, "ens/ls_neg", "ens/lse_neg")
    nodes.append(helper.make_node("Sub", ["ens/lse_pos", "ens/lse_neg"], [output_name]))
    graph = helper.make_graph(nodes, "fakewatch_ensemble", [graph_input], [first.graph.output[0]],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=list(first.opset_import), producer_name=first.producer_name,
                              producer_version=first.producer_version)
    model.ir_version = first.ir_version
    return model


def ensemble_proto(members: Sequence[Any], export_member: Callable[[Any], Any], input_name: str,
                   output_name: str) -> Any:
    """Export each torch member with ``export_member`` (-> ModelProto), one at a time, and join them."""
    protos = []
    for member in members:
        protos.append(export_member(member))
    return join_members(protos, input_name, output_name)
