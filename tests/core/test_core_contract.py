"""The artifact contract: validation, JSON/sidecar/ONNX round trips, clear errors."""
from __future__ import annotations

import json

import pytest

from fakewatch.core.checkpoint import default_spec
from fakewatch.core.contract import (
    ContractError,
    ModelSpec,
    embed_in_onnx,
    load_spec,
    read_sidecar,
    sidecar_path,
    spec_from_onnx_proto,
    write_sidecar,
)


def test_roundtrip_json_and_sidecar(tmp_path):
    spec = default_spec("tf-b4", threshold=0.37, roi_margin=0.25, provenance={"metrics": {"auc": 0.91}})
    assert spec.input_size == (380, 380)
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    art = tmp_path / "m.onnx"
    write_sidecar(art, spec, extra={"tensorrt": {"version": "10.3"}})
    assert sidecar_path(art).name == "m.onnx.json"
    assert read_sidecar(art) == spec
    assert json.loads(sidecar_path(art).read_text())["tensorrt"]["version"] == "10.3"


def test_onnx_metadata_roundtrip():
    onnx = pytest.importorskip("onnx")
    proto = onnx.ModelProto()
    spec = default_spec("lite0", threshold=0.8)
    embed_in_onnx(proto, spec)
    embed_in_onnx(proto, spec.replace(threshold=0.6))  # replaces, never duplicates
    assert [p.key for p in proto.metadata_props] == ["fakewatch.spec"]
    assert spec_from_onnx_proto(proto).threshold == 0.6


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.pop("timm_name"), "missing field(s) ['timm_name']"),
    (lambda d: d.update(colour="blue"), "unknown field(s) ['colour']"),
    (lambda d: d.update(schema_version=99), "schema_version 99 is not understood"),
    (lambda d: d.update(roi="body"), "roi must be one of"),
    (lambda d: d.update(threshold=1.5), "threshold must be a probability"),
    (lambda d: d.update(input_size=[224]), "input_size must be two positive ints"),
    (lambda d: d.update(std=[0.2, 0.0, 0.2]), "std must be positive"),
])
def test_invalid_contracts_are_rejected_clearly(mutate, needle):
    d = default_spec("b0").to_dict()
    mutate(d)
    with pytest.raises(ContractError) as err:
        ModelSpec.from_dict(d, where="x.onnx.json")
    assert needle in str(err.value)
    assert "x.onnx.json" in str(err.value)


def test_missing_sidecar_and_garbage_sidecar(tmp_path):
    art = tmp_path / "model.engine"
    art.write_bytes(b"plan")
    with pytest.raises(ContractError, match="no contract sidecar model.engine.json"):
        load_spec(art)
    sidecar_path(art).write_text("{not json")
    with pytest.raises(ContractError, match="cannot read the contract sidecar"):
        load_spec(art)
