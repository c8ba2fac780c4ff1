"""``fakewatch export triton``: fakewatch artifacts -> a standard Triton Inference Server model repository.

    REPO/<name>/config.pbtxt
    REPO/<name>/1/model.onnx   (platform onnxruntime_onnx, FP32/FP16/INT8 Q/DQ; or backend openvino)
    REPO/<name>/1/model.plan   (platform tensorrt_plan; a plan only loads on the GPU + TensorRT it was built with)

A stock ``tritonserver --model-repository REPO`` loads it. Names, dims and data types come from the artifact's
contract and graph; ``max_batch_size``, ``dynamic_batching`` and ``instance_group`` from :class:`TritonExportOptions`;
the full contract rides in the config's ``parameters`` (``fakewatch.spec``) so ``--backend triton`` clients need
no local model file. The written config is parsed with Triton's own protobuf (``tritonclient``'s
``model_config_pb2``) before the command reports success.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakewatch.core.contract import ModelSpec, read_sidecar_doc
from fakewatch.core.triton import (detector_parameters, detector_section_from_config, model_config_text,
                                   preferred_batches, spec_from_config, spec_parameters)
import fakewatch.runtime.backends as backends
from fakewatch.runtime.backends import detect_artifact

#: --platform -> (artifact types it serves, config line naming the Triton backend, file name in REPO/<name>/1/)
PLATFORMS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "onnxruntime": (("onnx",), 'platform: "onnxruntime_onnx"', "model.onnx"),
    "openvino": (("onnx",), 'backend: "openvino"\ndefault_model_filename: "model.onnx"', "model.onnx"),
    "tensorrt": (("tensorrt-plan",), 'platform: "tensorrt_plan"', "model.plan"),
}
#: artifact type -> platform used when --platform is not given
DEFAULT_PLATFORM = {"onnx": "onnxruntime", "tensorrt-plan": "tensorrt"}
INSTANCE_KINDS = ("KIND_GPU", "KIND_CPU", "KIND_AUTO")
_ONNX_ELEM = {1: "float32", 10: "float16"}   # onnx TensorProto element types fakewatch models take


@dataclass(frozen=True)
class TritonExportOptions:
    max_batch: int = 16
    preferred_batch: tuple[int, ...] = ()          # default: (max_batch // 2, max_batch)
    max_queue_delay_us: int = 2000
    instances: int = 1
    kind: str = "KIND_GPU"
    platform: str | None = None                    # None: from the artifact type

    def __post_init__(self) -> None:
        problems = []
        if self.max_batch < 1:
            problems.append(f"--max-batch must be >= 1, got {self.max_batch}")
        if any(not 1 <= b <= self.max_batch for b in self.preferred_batch):
            problems.append(f"--preferred-batch {list(self.preferred_batch)} must lie in 1..{self.max_batch}")
        if self.max_queue_delay_us < 0:
            problems.append(f"--max-queue-delay-us must be >= 0, got {self.max_queue_delay_us}")
        if self.instances < 1:
            problems.append(f"--instances must be >= 1, got {self.instances}")
        if self.kind not in INSTANCE_KINDS:
            problems.append(f"--kind must be one of {INSTANCE_KINDS}, got {self.kind!r}")
        if self.platform is not None and self.platform not in PLATFORMS:
            problems.append(f"--platform must be one of {tuple(PLATFORMS)}, got {self.platform!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def preferred(self, max_batch: int) -> tuple[int, ...]:
        return preferred_batches(max_batch, self.preferred_batch)


@dataclass(frozen=True)
class ExportedModel:
    name: str
    platform: str
    config: Path
    model_file: Path
    max_batch: int
    validated: bool


def model_name(artifact: Path) -> str:
    """A Triton model name from a file name: ``demo_model.onnx`` -> ``demo_model``."""
    stem = artifact.name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "model"


def _onnx_io(path: Path, spec: ModelSpec) -> tuple[int | None, str]:
    """(fixed batch or None, input dtype name) of an ONNX file, read without its weights."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = {i.name: i for i in graph.input}
    if spec.input_name not in inputs:
        raise ValueError(f"{path}: contract input {spec.input_name!r} is not a graph input (inputs: {list(inputs)})")
    t = inputs[spec.input_name].type.tensor_type
    dim0 = t.shape.dim[0] if t.shape.dim else None
    fixed = dim0.dim_value if dim0 is not None and dim0.HasField("dim_value") and dim0.dim_value > 0 else None
    if t.elem_type not in _ONNX_ELEM:
        raise ValueError(f"{path}: input {spec.input_name!r} has ONNX element type {t.elem_type}; fakewatch exports "
                         f"float32 or float16 inputs")
    return fixed, _ONNX_ELEM[t.elem_type]


def _plan_max_batch(path: Path) -> int | None:
    prof = (read_sidecar_doc(path).get("tensorrt") or {}).get("profile") or {}
    top = prof.get("max")
    if isinstance(top, (list, tuple)) and top:
        top = top[0]
    return int(top) if isinstance(top, (int, float)) and top > 0 else None


def config_text(name: str, spec: ModelSpec, platform: str, *, max_batch: int, input_dtype: str,
                opts: TritonExportOptions, detector: dict[str, Any] | None = None) -> str:
    """config.pbtxt for one model (protobuf text format, readable and commented); ``detector``: a face detector's
    decoding section, carried next to the contract so an edge node decodes its boxes without the model file."""
    carried = {**spec_parameters(spec), **(detector_parameters(detector) if detector is not None else {})}
    return model_config_text(name, spec, PLATFORMS[platform][1], max_batch=max_batch, input_dtype=input_dtype,
                             preferred=opts.preferred(max_batch), max_queue_delay_us=opts.max_queue_delay_us,
                             instances=opts.instances, kind=opts.kind, parameters=carried,
                             header=f"written by `fakewatch export triton` for {spec.variant} ({spec.precision}); "
                                    f"serve with\ntritonserver --model-repository <this repository's folder>")


def validate_config(text: str) -> dict[str, Any] | None:
    """Parse ``text`` with Triton's ModelConfig protobuf; returns its JSON form (what a server's
    ``get_model_config(as_json=True)`` gives), or None when tritonclient is not installed."""
    try:
        from google.protobuf import json_format, text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return None
    try:
        msg = text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"the generated config.pbtxt does not parse as Triton's ModelConfig: {exc}") from None
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def export_model(artifact: str | Path, repo: str | Path, *, name: str | None = None,
                 opts: TritonExportOptions | None = None, overwrite: bool = False) -> ExportedModel:
    """Copy one artifact into ``repo`` as ``<name>/1/<model file>`` with its ``config.pbtxt``."""
    opts = opts or TritonExportOptions()
    artifact = Path(artifact)
    kind = detect_artifact(artifact)
    platform = opts.platform or DEFAULT_PLATFORM.get(kind.name)
    if platform is None or kind.name not in PLATFORMS[platform][0]:
        ok = [p for p, row in PLATFORMS.items() if kind.name in row[0]]
        raise ValueError(f"{artifact} is a {kind.name}; Triton serves it with platform {ok or 'none'}"
                         + ("" if ok else "; export it to ONNX first (`fakewatch export onnx`)"))
    spec = kind.read_spec(artifact)
    name = name or model_name(artifact)
    if kind.name == "onnx":
        fixed, input_dtype = _onnx_io(artifact, spec)
        limit = fixed
    else:
        input_dtype, limit = "float32", _plan_max_batch(artifact)
    if kind.name == "onnx" and limit is not None:
        raise ValueError(f"{artifact} was exported with a fixed batch of {limit}; Triton's batcher needs a dynamic "
                         f"batch dimension. Re-export it without a fixed batch")
    max_batch = min(opts.max_batch, limit) if limit else opts.max_batch   # a plan's profile caps the batch
    detector = _detector_section(artifact, spec)
    text = config_text(name, spec, platform, max_batch=max_batch, input_dtype=input_dtype, opts=opts,
                       detector=detector)
    parsed = validate_config(text)
    if parsed is not None:
        back = spec_from_config(parsed, where=f"generated config for {name}")
        if back != spec:
            raise ValueError(f"{name}: the contract read back from the generated config differs from {artifact}'s")
        if detector is not None and detector_section_from_config(parsed, where=name) != detector:
            raise ValueError(f"{name}: the face detector section read back from the generated config differs")
    folder = Path(repo) / name
    if folder.exists():
        if not overwrite:
            raise ValueError(f"{folder} already exists; pass --overwrite to replace it or --name to pick "
                                  f"another model name")
        shutil.rmtree(folder)
    (folder / "1").mkdir(parents=True)
    model_file = folder / "1" / PLATFORMS[platform][2]
    shutil.copyfile(artifact, model_file)
    config = folder / "config.pbtxt"
    config.write_text(text)
    return ExportedModel(name, platform, config, model_file, max_batch, parsed is not None)


def _detector_section(artifact: Path, spec: ModelSpec) -> dict[str, Any] | None:
    """A face detector's decoding section (its sidecar's, or for a plan its ONNX's); None for a classifier."""
    if spec.output != "face_boxes":
        return None
    doc = read_sidecar_doc(artifact)
    section = doc.get("face_detector")
    if section is None and "tensorrt" in doc:
        onnx_path = Path(str(doc["tensorrt"].get("onnx_path", "")))
        section = read_sidecar_doc(onnx_path).get("face_detector") if onnx_path.is_file() else None
    if section is None:
        raise ValueError(f"{artifact} is a face detector ('face_boxes') but its sidecar has no 'face_detector' "
                         f"section (anchors, thresholds); export one made by `python -m "
                         f"fakewatch.export.blazeface_convert`")
    return section


#: ``--with-detector`` names -> the BlazeFace ONNX shipped with the runtime (runtime/assets/face/)
BUNDLED_DETECTORS = {"blazeface": "blazeface_full.onnx", "blazeface-short": "blazeface_short.onnx"}


def detector_artifact(choice: str) -> Path:
    """``blazeface`` / ``blazeface-short`` (the bundled models) or a path to a ``face_boxes`` model."""
    if choice in BUNDLED_DETECTORS:
        # the runtime's assets folder, found through the one runtime package export may use
        path = Path(backends.__file__).resolve().parents[1] / "assets" / "face" / BUNDLED_DETECTORS[choice]
        if not path.is_file():
            raise ValueError(f"the bundled {choice} model {path} is not installed; reinstall fakewatch or pass a path")
        return path
    path = Path(choice)
    if not path.is_file():
        raise ValueError(f"--with-detector {choice!r}: use {' or '.join(BUNDLED_DETECTORS)} or a face detector model "
                         f"file (BlazeFace .onnx or plan with its sidecar)")
    return path


def docker_command(repo: str | Path, image: str = "nvcr.io/nvidia/tritonserver:<yy.mm>-py3") -> str:
    """The ``docker run`` line that serves ``repo`` with the stock tritonserver container."""
    repo = Path(repo).resolve()
    return (f"docker run --rm --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 -v {repo}:/models {image} "
            f"tritonserver --model-repository=/models")
