"""Triton Inference Server facts shared by the repository exporter, the ``triton`` backend and ``fakewatch serve``.

Pure Python (no tritonclient import): how the fakewatch contract rides in a model config's ``parameters``, the
ONNX/numpy -> Triton data-type names, URL parsing, and reading a contract back out of a config fetched from a
server (``get_model_config(..., as_json=True)``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from fakewatch.core.contract import ContractError, ModelSpec

#: the config ``parameters`` key holding the full contract JSON (the same key as in ONNX metadata)
SPEC_PARAMETER = "fakewatch.spec"
#: a face detector's decoding (anchors, score threshold, NMS, box alignment): its sidecar's ``face_detector`` section
DETECTOR_PARAMETER = "fakewatch.face_detector"

#: numpy dtype name -> Triton config data_type / wire datatype
TRITON_DTYPES: dict[str, tuple[str, str]] = {
    "float32": ("TYPE_FP32", "FP32"),
    "float16": ("TYPE_FP16", "FP16"),
    "int8": ("TYPE_INT8", "INT8"),
    "uint8": ("TYPE_UINT8", "UINT8"),
}

DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


class TritonContractError(ContractError):
    """A Triton model config lacks the fakewatch contract or disagrees with it."""


@dataclass(frozen=True)
class TritonUrl:
    """``grpc://host:port`` (the only scheme the ``triton`` backend speaks) split into parts."""

    host: str
    port: int

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"grpc://{self.target}"


def parse_triton_url(text: str) -> TritonUrl:
    """``grpc://host:8001``, ``host:8001`` or ``host`` (port 8001) -> :class:`TritonUrl`."""
    m = re.fullmatch(r"(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:]+\]|[^:/\s]+)(?::(?P<port>\d+))?/?",
                     str(text).strip())
    if not m:
        raise ValueError(f"--triton-url {text!r}: expected grpc://HOST:PORT (e.g. grpc://127.0.0.1:8001)")
    scheme = m.group("scheme") or "grpc"
    if scheme != "grpc":
        hint = " (8000 is Triton's HTTP port; the gRPC port is 8001)" if scheme == "http" else ""
        raise ValueError(f"--triton-url {text!r}: the triton backend speaks gRPC only; use grpc://HOST:PORT{hint}")
    port = int(m.group("port") or DEFAULT_PORTS["grpc"])
    if not 0 < port < 65536:
        raise ValueError(f"--triton-url {text!r}: port {port} is out of range")
    return TritonUrl(m.group("host"), port)


def spec_parameters(spec: ModelSpec) -> dict[str, str]:
    """The config ``parameters`` (string values) that carry ``spec``: the whole contract plus readable keys."""
    return {SPEC_PARAMETER: spec.to_json(indent=None), "fakewatch.variant": spec.variant,
            "fakewatch.precision": spec.precision, "fakewatch.threshold": repr(float(spec.threshold))}


def detector_parameters(section: Mapping[str, Any]) -> dict[str, str]:
    """The config ``parameters`` that carry a face detector's decoding section (JSON, data only)."""
    return {DETECTOR_PARAMETER: json.dumps(dict(section), separators=(",", ":"), sort_keys=True)}


def preferred_batches(max_batch: int, chosen: tuple[int, ...] = ()) -> tuple[int, ...]:
    """Dynamic-batcher preferred sizes: ``chosen`` (those <= max_batch), else half and full ``max_batch``.

    Why half too: a request that already holds a preferred size runs at once; with only ``max_batch`` preferred, an
    edge node's batch of 8 waits the whole queue delay for company that may never come."""
    sizes = chosen or tuple(sorted({max(1, max_batch // 2), max_batch}))
    return tuple(b for b in sizes if b <= max_batch) or (max_batch,)


def model_config_text(name: str, spec: ModelSpec, backend_line: str, *, max_batch: int, input_dtype: str,
                      preferred: tuple[int, ...], max_queue_delay_us: int, instances: int, kind: str,
                      parameters: Mapping[str, str], header: str) -> str:
    """One model's config.pbtxt (protobuf text format, commented): I/O from the contract, Triton's dynamic batcher,
    instance group, and ``parameters`` (string values: the contract, a detector section, ...).

    Shared by ``fakewatch export triton`` (stock backends) and ``fakewatch serve`` (the python backend)."""
    in_type = TRITON_DTYPES[input_dtype][0]
    params = "\n".join(f'  {{ key: "{k}" value: {{ string_value: {json.dumps(v)} }} }},'
                       for k, v in parameters.items()).rstrip(",")
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return f"""{comment}name: "{name}"
{backend_line}
max_batch_size: {max_batch}
input [
  {{ name: "{spec.input_name}" data_type: {in_type} format: FORMAT_NCHW dims: [ 3, {spec.height}, {spec.width} ] }}
]
output [
  {{ name: "{spec.output_name}" data_type: TYPE_FP32 dims: [ {spec.num_outputs} ] }}
]
dynamic_batching {{
  preferred_batch_size: [ {", ".join(map(str, preferred))} ]
  max_queue_delay_microseconds: {max_queue_delay_us}
}}
instance_group [ {{ count: {instances} kind: {kind} }} ]
# the fakewatch contract: preprocessing, ROI, output meaning, threshold, provenance (clients read it from here)
parameters [
{params}
]
"""


def detector_section_from_config(config: Mapping[str, Any], where: str = "Triton model") -> dict[str, Any]:
    """The face detector section a model config carries; one clear error when it is not a detector's config."""
    raw = _parameter(config, DETECTOR_PARAMETER)
    if raw is None:
        raise TritonContractError(f"{where}: its config has no {DETECTOR_PARAMETER!r} parameter, so it is not a face "
                                  f"detector exported by `fakewatch export triton --with-detector`")
    try:
        section = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TritonContractError(f"{where}: parameter {DETECTOR_PARAMETER} is not valid JSON ({exc})") from None
    if not isinstance(section, dict):
        raise TritonContractError(f"{where}: parameter {DETECTOR_PARAMETER} must be a JSON object")
    return section


def _parameter(config: Mapping[str, Any], key: str) -> str | None:
    params = config.get("parameters") or {}
    value = params.get(key)
    if isinstance(value, Mapping):
        return value.get("string_value")
    return value if isinstance(value, str) else None


def spec_from_config(config: Mapping[str, Any], where: str = "Triton model") -> ModelSpec:
    """The contract carried in a model config (JSON form, as ``get_model_config(as_json=True)['config']``).

    Checks that the config's input/output names and dims agree with it, so a client never sends a tensor the
    server would reject.
    """
    raw = _parameter(config, SPEC_PARAMETER)
    if raw is None:
        raise TritonContractError(
            f"{where}: its config has no {SPEC_PARAMETER!r} parameter, so fakewatch does not know how to preprocess "
            f"for it or read its output. Serve it with `fakewatch serve MODEL` or export the repository with "
            f"`fakewatch export triton MODEL -o REPO`, which write the contract into the config")
    spec = ModelSpec.from_json(raw, where=f"{where} config parameter {SPEC_PARAMETER}")
    inputs = {t.get("name"): t for t in config.get("input", [])}
    outputs = {t.get("name"): t for t in config.get("output", [])}
    if spec.input_name not in inputs or spec.output_name not in outputs:
        raise TritonContractError(f"{where}: contract names input {spec.input_name!r} / output {spec.output_name!r} "
                                  f"but the config has inputs {list(inputs)} and outputs {list(outputs)}")
    dims = [int(d) for d in inputs[spec.input_name].get("dims", [])]
    if dims != [3, *spec.input_size]:
        raise TritonContractError(f"{where}: config input dims {dims} disagree with the contract "
                                  f"[3, {spec.input_size[0]}, {spec.input_size[1]}]")
    return spec


def max_batch_size(config: Mapping[str, Any]) -> int:
    return int(config.get("max_batch_size", 0) or 0)


def input_wire_dtype(config: Mapping[str, Any], name: str) -> str:
    """The wire datatype (``FP32``) of input ``name`` in a JSON model config."""
    for t in config.get("input", []):
        if t.get("name") == name:
            cfg_type = t.get("data_type", "TYPE_FP32")
            for config_type, wire in TRITON_DTYPES.values():
                if config_type == cfg_type:
                    return wire
            raise TritonContractError(f"input {name!r} has data_type {cfg_type}; fakewatch sends "
                                      f"{', '.join(c for c, _ in TRITON_DTYPES.values())}")
    raise TritonContractError(f"no input {name!r} in the model config")


def parse_metrics(text: str) -> dict[tuple[str, str], float]:
    """Prometheus text from Triton's ``/metrics`` -> {(metric name, model label): value} (model-labelled series
    only; the per-GPU and per-process gauges are skipped)."""
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        m = re.match(r'^(nv_[a-z_]+)\{([^}]*)\}\s+([-+0-9.eE]+|NaN)$', line.strip())
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if "model" in labels:
            key = (m.group(1), labels["model"])
            out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


__all__ = ["DEFAULT_PORTS", "DETECTOR_PARAMETER", "SPEC_PARAMETER", "detector_parameters",
           "detector_section_from_config", "TRITON_DTYPES", "TritonContractError", "TritonUrl",
           "input_wire_dtype", "max_batch_size", "parse_metrics", "parse_triton_url", "spec_from_config",
           "spec_parameters"]
