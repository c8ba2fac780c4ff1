"""Published deepfake detectors: one recipe row per checkpoint family, read from the authors' own code.

Each :class:`Recipe` says where the weights sit in the file the authors released (container key, prefixes), which
EfficientNet implementation wrote them (timm or EfficientNet-PyTorch), what the head is (one fake logit, or two
classes whose softmax[1] is P(fake)), and the exact input contract of their inference code (size, resize rule,
mean/std, colour order, crop rule). :func:`load_published` turns one or more such checkpoints into a timm model with
a single fake-logit output whose sigmoid equals the original P(fake), plus its :class:`ModelSpec`.

Sources (read with the anchors' code, see docs/published-detectors.md for links, licences and reported scores):

* ``dfdc-selimsef``: selimsef/dfdc_deepfake_challenge ``training/zoo/classifiers.py`` (``DeepFakeClassifier``:
  ``encoder`` = timm ``tf_efficientnet_b7_ns``, ``forward_features`` -> avg pool -> ``fc`` 2560->1),
  ``training/pipelines/train_classifier.py`` (saved ``{"epoch", "state_dict", "bce_best"}`` from a DataParallel
  model: ``module.`` prefix), ``kernel_utils.py`` (RGB, MTCNN box + ``side // 3`` per side,
  ``isotropically_resize_image`` + ``put_to_center`` to 380, ImageNet mean/std, ``sigmoid``; ensemble = mean over
  models), ``predict_folder.py`` (strips ``^module.``, 380 px).
* ``sbi``: mapooon/SelfBlendedImages ``src/model.py`` / ``src/inference/model.py`` (``Detector.net`` =
  EfficientNet-PyTorch ``efficientnet-b4``, advprop, 2 classes), ``src/train_sbi.py`` (saved
  ``{"model", "optimizer", "epoch"}``), ``src/inference/preprocess.py`` (RetinaFace box + side/8 per side,
  ``cv2.resize`` to 380x380, RGB), ``inference_video.py`` (``/255`` only, ``softmax(1)[:, 1]``).
* ``deepfakebench-effb4``: SCLBD/DeepfakeBench ``training/networks/efficientnetb4.py`` (EfficientNet-PyTorch
  ``efficientnet-b4`` with its stem replaced by an *unpadded* ``nn.Conv2d(3, 48, 3, stride=2)``, ``_fc`` =
  Identity, ``last_layer`` 1792->2), ``training/detectors/efficientnetb4_detector.py`` (``backbone.`` prefix,
  ``softmax[:, 1]``), ``training/config/detector/efficientnetb4.yaml`` (256 px, mean = std = 0.5),
  ``training/dataset/abstract_dataset.py`` (RGB, ``cv2.resize(..., INTER_CUBIC)``).

EfficientNet-PyTorch pads every convolution with TF "SAME" padding computed once, at construction, for the
variant's default image size (380 for B4) -- not for the size actually fed. :func:`freeze_static_same_padding`
reproduces that on the timm model (it matters for DeepfakeBench, whose 256 px input and unpadded stem give feature
maps of other parities than the 380 px chain the paddings were computed for).

Everything loads with ``torch.load(weights_only=True)``; numpy scalars (DFDC's ``bce_best``) are allowed through
``torch.serialization.safe_globals``, nothing else.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fakewatch.core.contract import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD


class PublishedError(ValueError):
    """A published checkpoint could not be read, recognised or mapped."""


# Head width -> EfficientNet variant (features of B0..B7); B0 and B1 share 1280 and are told apart by block count.
_FEATURES = {1280: None, 1408: 2, 1536: 3, 1792: 4, 2048: 5, 2304: 6, 2560: 7}
_B0_B1_BLOCKS = {16: 0, 23: 1}


@dataclass(frozen=True)
class Recipe:
    name: str                          # the `--from` value
    title: str
    source: str                        # repository the recipe was read from
    container_key: str | None          # where the state dict sits in the saved object (None: the object itself)
    body_prefix: str                   # backbone keys start with this (after any DataParallel "module.")
    layout: str                        # "timm" or "lukemelas" (EfficientNet-PyTorch) backbone key names
    head: tuple[str, str]              # head weight/bias keys (after "module." is stripped)
    head_kind: str                     # "fake_logit" (1 output, sigmoid) or "softmax2" (2 outputs, softmax[1])
    signature: tuple[str, ...]         # keys that identify the layout unambiguously (auto-detection)
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str                        # ModelSpec.resize
    roi_rule: str                      # ModelSpec.roi_rule
    roi_margin: float
    face_detector: str                 # what the authors detected faces with (documentation; fakewatch uses its own)
    default_variant: str               # for messages and docs
    ignore_prefixes: tuple[str, ...] = ()   # keys the original forward never uses
    static_same_padding: bool = False  # EfficientNet-PyTorch static TF padding for the variant's default size
    stem_padding: str = "same"         # "valid": DeepfakeBench's replacement stem conv has no padding
    ensemble: str = "mean of sigmoid(logit) over models"
    notes: tuple[str, ...] = field(default_factory=tuple)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("dfdc-selimsef", "DFDC winner (Selim Seferbekov)", "selimsef/dfdc_deepfake_challenge",
           container_key="state_dict", body_prefix="encoder.", layout="timm", head=("fc.weight", "fc.bias"),
           head_kind="fake_logit", signature=("encoder.conv_stem.weight", "fc.weight"),
           input_size=380, mean=IMAGENET_MEAN, std=IMAGENET_STD, resize="isotropic_pad", roi_rule="dfdc",
           roi_margin=1 / 3, face_detector="MTCNN (facenet-pytorch) on the half-size frame, thresholds 0.7/0.8/0.8",
           default_variant="tf-b7", ignore_prefixes=("encoder.classifier.",),
           notes=("video score in the original: confident_strategy over frames per model, then the mean over models",)),
    Recipe("sbi", "Self-Blended Images (Shiohara & Yamasaki, CVPR 2022)", "mapooon/SelfBlendedImages",
           container_key="model", body_prefix="net.", layout="lukemelas", head=("net._fc.weight", "net._fc.bias"),
           head_kind="softmax2", signature=("net._conv_stem.weight", "net._fc.weight"),
           input_size=380, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resize="linear", roi_rule="sbi",
           roi_margin=0.125, face_detector="RetinaFace resnet50_2020-07-20 (retinaface-pytorch), max_size 2048",
           default_variant="tf-b4", static_same_padding=True,
           notes=("video score in the original: max over the faces of a frame, then the mean over frames",)),
    Recipe("deepfakebench-effb4", "DeepfakeBench EfficientNet-B4", "SCLBD/DeepfakeBench",
           container_key=None, body_prefix="backbone.efficientnet.", layout="lukemelas",
           head=("backbone.last_layer.weight", "backbone.last_layer.bias"), head_kind="softmax2",
           signature=("backbone.efficientnet._conv_stem.weight", "backbone.last_layer.weight"),
           input_size=256, mean=INCEPTION_MEAN, std=INCEPTION_STD, resize="cubic", roi_rule="square",
           roi_margin=0.15, face_detector="dlib frontal detector + 81 landmarks, 5-point alignment, scale 1.3",
           default_variant="tf-b4", static_same_padding=True, stem_padding="valid",
           notes=("crops in the original are landmark-aligned (similarity transform, scale 1.3); fakewatch "
                  "approximates them with a square box grown by 0.15 per side, without rotation",)),
)}


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise PublishedError(f"unknown published recipe {name!r}; known: {', '.join(RECIPES)}") from None


# ----------------------------------------------------------------------------- reading the files
def _numpy_safe_globals() -> list[Any]:
    """numpy scalar reconstruction: what a checkpoint holding e.g. ``np.float64`` metadata pickles."""
    import numpy as np

    found: list[Any] = [np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            found.append(getattr(__import__(mod, fromlist=["scalar"]), "scalar"))
        except (ImportError, AttributeError):
            pass
    found += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32")]
    return found


def torch_load_weights(path: Path) -> Any:
    """``torch.load(weights_only=True)`` allowing numpy scalars and dtypes (never code): core.checkpoint's loader,
    with its one clear error raised as :class:`PublishedError`."""
    from fakewatch.core.checkpoint import CheckpointError, _torch_load

    try:
        return _torch_load(Path(path))
    except CheckpointError as exc:
        raise PublishedError(str(exc)) from None


def _strip_module(state: dict[str, Any]) -> dict[str, Any]:
    # DataParallel / DDP wrap every key in "module." (selimsef's predict_folder strips it the same way)
    return {re.sub(r"^module\.", "", k): v for k, v in state.items()}


def state_of(obj: Any, rec: Recipe, where: str) -> dict[str, Any]:
    """The recipe's state dict inside a loaded object, "module." stripped."""
    inner = obj
    if rec.container_key is not None:
        if not isinstance(obj, dict) or rec.container_key not in obj:
            keys = list(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
            raise PublishedError(f"{where}: a {rec.name} checkpoint keeps its weights under "
                                 f"{rec.container_key!r}, but this file has {keys}")
        inner = obj[rec.container_key]
    if not isinstance(inner, dict):
        raise PublishedError(f"{where}: expected a dict of tensors, got {type(inner).__name__}")
    return _strip_module(inner)


def detect_recipe(obj: Any) -> Recipe | None:
    """The one recipe whose container and signature keys match ``obj``, or None (ambiguity is an error)."""
    hits = []
    for rec in RECIPES.values():
        try:
            state = state_of(obj, rec, "")
        except PublishedError:
            continue
        if all(k in state for k in rec.signature):
            hits.append(rec)
    if len(hits) > 1:
        raise PublishedError(f"checkpoint matches several recipes ({[r.name for r in hits]}); pick one with --from")
    return hits[0] if hits else None


def infer_variant(state: dict[str, Any], rec: Recipe) -> str:
    """tf-bN from the backbone's head width (and block count for B0/B1)."""
    head_conv = rec.body_prefix + ("conv_head.weight" if rec.layout == "timm" else "_conv_head.weight")
    if head_conv not in state:
        raise PublishedError(f"{rec.name} checkpoint has no {head_conv!r}: not an EfficientNet backbone")
    features = int(state[head_conv].shape[0])
    if features not in _FEATURES:
        raise PublishedError(f"{rec.name} backbone has {features} head channels; EfficientNet B0-B7 have "
                             f"{sorted(_FEATURES)}")
    index = _FEATURES[features]
    if index is None:
        pattern = re.compile(re.escape(rec.body_prefix) + (r"blocks\.(\d+)\.(\d+)\." if rec.layout == "timm"
                                                           else r"_blocks\.(\d+)\."))
        blocks = {m.groups() for k in state if (m := pattern.match(k))}
        index = _B0_B1_BLOCKS.get(len(blocks))
        if index is None:
            raise PublishedError(f"{rec.name} backbone with 1280 channels has {len(blocks)} blocks (B0 has 16, "
                                 f"B1 23)")
    return f"tf-b{index}"


# ----------------------------------------------------------------------------- model surgery
@functools.lru_cache(maxsize=None)   # one class, so isinstance() holds across calls
def _static_conv_class():
    import torch.nn as nn
    import torch.nn.functional as F

    class StaticPadConv2d(nn.Conv2d):
        """Conv2d with fixed (left, right, top, bottom) zero padding; same parameter names as nn.Conv2d."""

        def forward(self, x):  # noqa: D401 - torch API
            return F.conv2d(F.pad(x, self.static_pad), self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups)

    return StaticPadConv2d


def _tf_same_pad(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """EfficientNet-PyTorch ``Conv2dStaticSamePadding``: pads for an input of ``size`` (left, right, top, bottom)."""
    pads = []
    for i, k, s, d in zip(size, kernel, stride, dilation):
        o = -(-i // s)
        pads.append(max((o - 1) * s + (k - 1) * d + 1 - i, 0))
    ph, pw = pads
    return (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)


def freeze_static_same_padding(model, image_size: int) -> int:
    """Replace every padded conv of a timm TF-SAME model by one padded as EfficientNet-PyTorch pads it, i.e. for
    the input sizes seen when an ``image_size`` image goes through (its ``calculate_output_image_size`` chain).
    Returns the number of convs replaced."""
    import torch
    import torch.nn as nn

    StaticPadConv2d = _static_conv_class()
    sizes: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d) and not isinstance(mod, StaticPadConv2d):
            hooks.append(mod.register_forward_pre_hook(
                lambda m, inp, name=name: sizes.__setitem__(name, tuple(inp[0].shape[-2:]))))
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    for h in hooks:
        h.remove()
    replaced = 0
    for name, size in sizes.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, child)
        pad = _tf_same_pad(size, old.kernel_size, old.stride, old.dilation)
        if type(old) is nn.Conv2d and isinstance(old.padding, tuple) and \
                pad == (old.padding[1], old.padding[1], old.padding[0], old.padding[0]):
            continue   # already padded exactly so (1x1 convs, stride-1 symmetric SAME)
        new = StaticPadConv2d(old.in_channels, old.out_channels, old.kernel_size, old.stride, 0, old.dilation,
                              old.groups, old.bias is not None)
        new.static_pad = pad
        new.load_state_dict(old.state_dict())
        setattr(parent, child, new)
        replaced += 1
    return replaced


def _unpad_stem(model) -> None:
    """DeepfakeBench's stem: ``nn.Conv2d(3, 48, kernel_size=3, stride=2, bias=False)``, no padding at all."""
    old = model.conv_stem
    new = _static_conv_class()(old.in_channels, old.out_channels, old.kernel_size, old.stride, 0, old.dilation,
                               old.groups, old.bias is not None)
    new.static_pad = (0, 0, 0, 0)
    new.load_state_dict(old.state_dict())
    model.conv_stem = new


# ----------------------------------------------------------------------------- load
def _fake_logit_head(w, b, rec: Recipe, where: str):
    """(1, F) weight and (1,) bias whose output is the fake logit: softmax2 -> logit_fake - logit_real."""
    if rec.head_kind == "fake_logit":
        if w.shape[0] != 1:
            raise PublishedError(f"{where}: {rec.name} head should have 1 output, has {w.shape[0]}")
        return w, b
    if w.shape[0] != 2:
        raise PublishedError(f"{where}: {rec.name} head should have 2 outputs (real, fake), has {w.shape[0]}")
    # softmax([r, f])[1] = 1 / (1 + exp(r - f)) = sigmoid(f - r): one linear row gives exactly P(fake)
    return (w[1] - w[0]).unsqueeze(0), (b[1] - b[0]).reshape(1)


def _load_one(path: Path, rec: Recipe, variant: str | None):
    from fakewatch.core.checkpoint import CheckpointError, build_model, default_spec, map_lukemelas_to_timm

    where = f"checkpoint {path}"
    obj = torch_load_weights(path)
    try:
        state = state_of(obj, rec, where)
        missing = [k for k in rec.signature if k not in state]
        if missing:
            raise PublishedError(f"{where}: not a {rec.name} checkpoint (missing {missing}; first keys "
                                 f"{list(state)[:4]})")
    except PublishedError as exc:
        other = detect_recipe(obj)
        hint = (f"it looks like a {other.name} checkpoint: use --from {other.name}" if other else
                f"it matches none of {', '.join(RECIPES)}")
        raise PublishedError(f"{exc}; {hint}") from None
    variant = variant or infer_variant(state, rec)
    w, b = state[rec.head[0]], state[rec.head[1]]
    w, b = _fake_logit_head(w, b, rec, where)
    spec = default_spec(variant, num_outputs=1, mean=rec.mean, std=rec.std,
                        input_size=(rec.input_size, rec.input_size), resize=rec.resize, roi_rule=rec.roi_rule,
                        roi_margin=rec.roi_margin)
    model = build_model(spec, exportable=True)
    body = {k[len(rec.body_prefix):]: v for k, v in state.items()
            if k.startswith(rec.body_prefix) and not k.startswith(rec.ignore_prefixes or ("\0",))
            and k not in rec.head}
    try:
        if rec.layout == "lukemelas":
            body = map_lukemelas_to_timm(body, model)
    except CheckpointError as exc:
        raise PublishedError(f"{where}: {exc} (asked for {variant})") from None
    body["classifier.weight"], body["classifier.bias"] = w, b
    result = model.load_state_dict(body, strict=False)
    missing_keys = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing_keys or result.unexpected_keys:
        raise PublishedError(f"{where}: does not fit timm {spec.timm_name}: missing {missing_keys[:3]}, "
                             f"unexpected {result.unexpected_keys[:3]} (variant {variant}; pass --variant)")
    if rec.static_same_padding:
        from fakewatch.core.variants import resolve_variant

        freeze_static_same_padding(model, resolve_variant(variant).input_size)
    if rec.stem_padding == "valid":
        _unpad_stem(model)
    return model.eval(), spec


def load_published(paths: Sequence[str | Path], recipe_name: str | None = None, variant: str | None = None):
    """Load one checkpoint, or several of one recipe as an ensemble. Returns ``(model, spec, notes)``.

    The model outputs one fake logit per image; for an ensemble it is ``logit(mean_i sigmoid(logit_i))``, so its
    sigmoid is the authors' average of the members' probabilities.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise PublishedError("no checkpoint given")
    if recipe_name is None:
        rec = detect_recipe(torch_load_weights(paths[0]))
        if rec is None:
            raise PublishedError(f"{paths[0]} matches no published recipe ({', '.join(RECIPES)}); name one with "
                                 f"--from, or export it as a fakewatch/timm checkpoint with --variant")
    else:
        rec = recipe(recipe_name)
    members = [_load_one(p, rec, variant) for p in paths]
    specs = {(m[1].variant, m[1].input_size) for m in members}
    if len(specs) > 1:
        raise PublishedError(f"ensemble members differ in architecture {sorted(specs)}; an ensemble needs one "
                             f"variant at one input size")
    spec = members[0][1]
    provenance = {"published": rec.name, "source_repo": rec.source, "face_detector": rec.face_detector,
                  "source_checkpoints": [p.name for p in paths], "head": rec.head_kind}
    if len(members) == 1:
        model = members[0][0]
    else:
        model = make_ensemble([m[0] for m in members])
        provenance["ensemble"] = f"{len(members)} models: {rec.ensemble}"
    spec = spec.replace(provenance=provenance)
    notes = [f"{rec.title}: {rec.input_size}px, resize {rec.resize}, crop rule {rec.roi_rule} "
             f"(margin {rec.roi_margin:.3g}), mean {tuple(round(m, 3) for m in rec.mean)} "
             f"std {tuple(round(s, 3) for s in rec.std)}", *rec.notes]
    return model, spec, notes


def make_ensemble(models: Sequence[Any]):
    """Members side by side in one module: one input, one fake logit = logit(mean of the members' sigmoids)."""
    import torch
    import torch.nn as nn

    # spelled out so the exported graph stays finite: ONNX's export of logsigmoid is log(sigmoid(v)), -inf once
    # sigmoid underflows; here nothing is ever log(0)
    def _log_sigmoid(v):
        return torch.clamp(v, max=0.0) - torch.log(1.0 + torch.exp(-v.abs()))

    def _logsumexp(a):
        top = a.max(0).values
        return top + torch.log(torch.exp(a - top).sum(0))

    class MeanProbEnsemble(nn.Module):
        def __init__(self, members):
            super().__init__()
            self.members = nn.ModuleList(members)

        @property
        def ensemble_members(self):   # export traces these one at a time (export/ensemble_onnx.py)
            return list(self.members)

        def forward(self, x):
            # logit(mean_i sigmoid(z_i)) = logsumexp_i logsigmoid(z_i) - logsumexp_i logsigmoid(-z_i) (the 1/M
            # cancels): exact and well conditioned in float32 even when every member is certain, where
            # log(p) - log(1 - p) of the averaged probability lost ~1e-2 of a logit between torch and ONNX Runtime
            z = torch.stack([m(x) for m in self.members], 0)
            return _logsumexp(_log_sigmoid(z)) - _logsumexp(_log_sigmoid(-z))

    return MeanProbEnsemble(list(models)).eval()
