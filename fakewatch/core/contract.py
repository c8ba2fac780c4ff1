"""The model artifact contract: everything the runtime must not guess about a model.

A :class:`ModelSpec` travels inside every artifact fakewatch writes: fine-tuned checkpoints (``.pt``), ONNX
``metadata_props`` (key ``fakewatch.spec``) and a JSON sidecar next to each exported file (``model.onnx`` ->
``model.onnx.json``). Loading validates it; unknown fields, missing fields and newer schema versions are errors.

This module is import-light on purpose (stdlib only, ``onnx`` lazily) so the runtime can read contracts on a Jetson
without torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fakewatch.core.atomic import atomic_write_text

# Version 2 added ``resize`` and ``roi_rule`` (published detectors' own crop and resize rules). A contract that
# uses neither is still written as version 1, so older fakewatch releases keep reading it; this one reads both.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
V2_FIELDS = {"resize": "linear", "roi_rule": "square"}
ONNX_METADATA_KEY = "fakewatch.spec"
SIDECAR_SUFFIX = ".json"

ROI_MODES = ("full", "face")
CHANNEL_ORDERS = ("RGB", "BGR")
# What the model's output means. "fake_logit": one logit, sigmoid -> P(fake). "class_logits": N-way logits
# (an ImageNet head kept for fidelity checks); the runtime cannot turn those into Real/Fake alerts. "face_boxes": a face
# detector's raw per-anchor outputs, decoded by the sidecar's "face_detector" section (core/blazeface.py).
OUTPUT_KINDS = ("fake_logit", "class_logits", "face_boxes")
PRECISIONS = ("fp32", "fp16", "int8")
# How a crop becomes the input (core/preprocess.py RESIZERS): "linear" cv2.INTER_LINEAR stretch (fakewatch's own),
# "cubic" cv2.INTER_CUBIC stretch (DeepfakeBench), "isotropic_pad" longest side to size (INTER_AREA down,
# INTER_CUBIC up) then zero-padded to the centre (DFDC winner's isotropically_resize_image + put_to_center).
RESIZE_MODES = ("linear", "cubic", "isotropic_pad")
# How a detector box becomes the crop (core/roi.py ROI_RULES): "square" (fakewatch's), "dfdc" (box + side//3 each
# side, not square; selimsef kernel_utils), "sbi" (box + side/8 each side, int-truncated; mapooon crop_face test).
ROI_RULES = ("square", "dfdc", "sbi")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


class ContractError(ValueError):
    """A model artifact's contract is missing, malformed or from an unknown schema version."""


@dataclass(frozen=True)
class ModelSpec:
    """Preprocessing + output contract of one model artifact (see module docstring)."""

    variant: str                      # short registry name, e.g. "b0", "tf-b4", "lite0"
    timm_name: str                    # e.g. "efficientnet_b0"
    input_size: tuple[int, int]       # (height, width)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"        # order the network expects; frames arrive BGR
    roi: str = "face"                 # "full" frame or "face" crop
    roi_margin: float = 0.3           # face box grown by this fraction of its size on each side
    labels: tuple[str, ...] = ("real", "fake")
    threshold: float = 0.5            # P(fake) at or above which a frame counts as fake
    output: str = "fake_logit"
    num_outputs: int = 1
    input_name: str = "input"
    output_name: str = "logit"
    precision: str = "fp32"
    resize: str = "linear"
    roi_rule: str = "square"
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # Normalise JSON lists back to tuples so equality round-trips.
        for name in ("input_size", "mean", "std", "labels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        problems: list[str] = []
        if self.schema_version not in READABLE_VERSIONS:
            problems.append(
                f"schema_version {self.schema_version} is not understood by this fakewatch (it reads "
                f"versions {list(READABLE_VERSIONS)}); upgrade fakewatch or re-export the model with this version")
        if self.resize not in RESIZE_MODES:
            problems.append(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.roi_rule not in ROI_RULES:
            problems.append(f"roi_rule must be one of {ROI_RULES}, got {self.roi_rule!r}")
        if len(self.input_size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.input_size):
            problems.append(f"input_size must be two positive ints (height, width), got {self.input_size!r}")
        for name in ("mean", "std"):
            vals = getattr(self, name)
            if len(vals) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
                problems.append(f"{name} must be three finite numbers, got {vals!r}")
        if any(isinstance(v, (int, float)) and v <= 0 for v in self.std):
            problems.append(f"std must be positive, got {self.std!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if self.roi not in ROI_MODES:
            problems.append(f"roi must be one of {ROI_MODES}, got {self.roi!r}")
        if not (isinstance(self.roi_margin, (int, float)) and 0.0 <= self.roi_margin <= 2.0):
            problems.append(f"roi_margin must be a number in [0, 2], got {self.roi_margin!r}")
        if not (isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold <= 1.0):
            problems.append(f"threshold must be a probability in [0, 1], got {self.threshold!r}")
        if self.output not in OUTPUT_KINDS:
            problems.append(f"output must be one of {OUTPUT_KINDS}, got {self.output!r}")
        if self.output == "fake_logit" and (self.num_outputs != 1 or len(self.labels) != 2):
            problems.append("output 'fake_logit' needs num_outputs=1 and two labels (real, fake)")
        if not (isinstance(self.num_outputs, int) and self.num_outputs >= 1):
            problems.append(f"num_outputs must be a positive int, got {self.num_outputs!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.provenance, dict):
            problems.append("provenance must be a JSON object")
        if problems:
            raise ContractError("invalid model contract: " + "; ".join(problems))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (str() for anything else, e.g. torch's TorchVersion in provenance), so the dict
        survives ``torch.load(weights_only=True)`` inside checkpoints as well as JSON sidecars."""
        d = dataclasses.asdict(self)
        for name in ("input_size", "mean", "std", "labels"):
            d[name] = list(d[name])
        if all(d[k] == v for k, v in V2_FIELDS.items()):   # nothing version 1 cannot say: stay readable by it
            for k in V2_FIELDS:
                del d[k]
            d["schema_version"] = 1
        else:
            d["schema_version"] = SCHEMA_VERSION
        return json.loads(json.dumps(d, default=str))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "contract") -> "ModelSpec":
        if not isinstance(data, Mapping):
            raise ContractError(f"{where}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        version = data.get("schema_version", None)
        if version is None:
            raise ContractError(f"{where}: no schema_version; this is not a fakewatch contract")
        if version not in READABLE_VERSIONS:
            raise ContractError(
                f"{where}: schema_version {version!r} is not understood by this fakewatch (it reads versions "
                f"{list(READABLE_VERSIONS)}); upgrade fakewatch or re-export the model")
        if version == 1:
            known = known - set(V2_FIELDS)   # a version-1 contract cannot carry them
        unknown = sorted(set(data) - known)
        missing = sorted(required - set(data))
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing field(s) {missing}")
            if unknown:
                parts.append(f"unknown field(s) {unknown}")
            raise ContractError(f"{where}: " + ", ".join(parts) + f"; known fields are {sorted(known)}")
        data = dict(data)
        data["schema_version"] = SCHEMA_VERSION   # in memory every contract is the current version
        try:
            return cls(**data)
        except ContractError as exc:
            raise ContractError(f"{where}: {exc}") from None
        except TypeError as exc:
            raise ContractError(f"{where}: {exc}") from None

    @classmethod
    def from_json(cls, text: str, *, where: str = "contract") -> "ModelSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_dict(data, where=where)

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    def with_provenance(self, **entries: Any) -> "ModelSpec":
        """A copy whose provenance has ``entries`` merged in (later steps append, never erase history)."""
        merged = dict(self.provenance)
        merged.update(entries)
        return dataclasses.replace(self, provenance=merged)

    # ------------------------------------------------------------------ convenience
    @property
    def height(self) -> int:
        return self.input_size[0]

    @property
    def width(self) -> int:
        return self.input_size[1]

    def input_shape(self, batch: int | str = "N") -> tuple:
        return (batch, 3, self.height, self.width)


# ---------------------------------------------------------------------- sidecars
def sidecar_path(artifact: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (keeps the artifact's own suffix so sidecars never collide)."""
    p = Path(artifact)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def write_sidecar(artifact: str | Path, spec: ModelSpec, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the contract (plus optional extra top-level sections, e.g. TensorRT build info) next to ``artifact``."""
    doc: dict[str, Any] = {"fakewatch_spec": spec.to_dict()}
    if extra:
        doc.update(extra)
    path = sidecar_path(artifact)
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")   # never a half-written contract
    return path


def read_sidecar_doc(artifact: str | Path) -> dict[str, Any]:
    path = sidecar_path(artifact)
    if not path.is_file():
        raise ContractError(
            f"{artifact}: no contract sidecar {path.name} next to it; re-export the model with "
            f"`fakewatch export onnx` (which writes it) or copy the sidecar along with the model")
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"{path}: cannot read the contract sidecar ({exc})") from None
    if not isinstance(doc, dict) or "fakewatch_spec" not in doc:
        raise ContractError(f"{path}: not a fakewatch sidecar (no 'fakewatch_spec' section)")
    return doc


def read_sidecar(artifact: str | Path) -> ModelSpec:
    return ModelSpec.from_dict(read_sidecar_doc(artifact)["fakewatch_spec"], where=str(sidecar_path(artifact)))


# ---------------------------------------------------------------------- ONNX metadata
def embed_in_onnx(model_proto: Any, spec: ModelSpec) -> None:
    """Store the contract in an in-memory ``onnx.ModelProto``'s ``metadata_props`` (replacing an older one)."""
    props = model_proto.metadata_props
    for i in reversed(range(len(props))):
        if props[i].key == ONNX_METADATA_KEY:
            del props[i]
    entry = props.add()
    entry.key = ONNX_METADATA_KEY
    entry.value = spec.to_json(indent=None)


def spec_from_onnx_proto(model_proto: Any, where: str = "ONNX model") -> ModelSpec:
    for prop in model_proto.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            return ModelSpec.from_json(prop.value, where=f"{where} metadata")
    raise ContractError(f"{where}: no '{ONNX_METADATA_KEY}' entry in metadata_props; "
                        f"export it with `fakewatch export onnx` or pass a model with a sidecar")


def read_onnx_spec(path: str | Path) -> ModelSpec:
    """Read the contract embedded in an ONNX file without loading its weights."""
    import onnx  # lazy: only needed when reading ONNX files

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError / google.protobuf errors
        raise ContractError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc}); "
                            f"the file may be truncated - export it again") from None
    return spec_from_onnx_proto(proto, where=str(path))


def load_spec(artifact: str | Path) -> ModelSpec:
    """The contract of any artifact: its sidecar when present, else (ONNX) its embedded metadata."""
    artifact = Path(artifact)
    if sidecar_path(artifact).is_file():
        return read_sidecar(artifact)
    if artifact.suffix == ".onnx":
        return read_onnx_spec(artifact)
    return read_sidecar(artifact)  # raises the "no sidecar" error with advice
