"""Triton facts shared by export, the triton backend and serve: URLs, the contract in a config, metrics text."""
from __future__ import annotations

import pytest

from fakewatch.core.checkpoint import default_spec
from fakewatch.core.triton import (SPEC_PARAMETER, TritonContractError, input_wire_dtype, parse_metrics,
                                   parse_triton_url, spec_from_config, spec_parameters)


@pytest.mark.parametrize("text, target", [("grpc://10.0.0.5:9001", "10.0.0.5:9001"), ("gpu-host", "gpu-host:8001"),
                                          ("127.0.0.1:18001", "127.0.0.1:18001"), ("grpc://[::1]:8001/", "[::1]:8001")])
def test_parse_triton_url(text, target):
    assert parse_triton_url(text).target == target


@pytest.mark.parametrize("text, words", [("http://host:8000", "gRPC port is 8001"), ("grpc://host:99999", "range"),
                                         ("grpc://", "expected grpc://HOST:PORT")])
def test_parse_triton_url_rejects(text, words):
    with pytest.raises(ValueError, match=words):
        parse_triton_url(text)


def _config(spec, dims=None):
    return {"name": "m", "max_batch_size": 8,
            "input": [{"name": spec.input_name, "data_type": "TYPE_FP32", "dims": dims or ["3", "64", "64"]}],
            "output": [{"name": spec.output_name, "data_type": "TYPE_FP32", "dims": ["1"]}],
            "parameters": {k: {"string_value": v} for k, v in spec_parameters(spec).items()}}


def test_contract_round_trips_through_config_parameters():
    spec = default_spec("test", roi="full").with_provenance(note="x")
    cfg = _config(spec)
    assert spec_from_config(cfg) == spec
    assert input_wire_dtype(cfg, spec.input_name) == "FP32"


def test_config_without_contract_or_with_other_dims_is_refused():
    spec = default_spec("test", roi="full")
    cfg = _config(spec)
    del cfg["parameters"][SPEC_PARAMETER]
    with pytest.raises(TritonContractError, match="fakewatch serve"):
        spec_from_config(cfg)
    with pytest.raises(TritonContractError, match=r"dims \[3, 32, 32\] disagree"):
        spec_from_config(_config(spec, dims=["3", "32", "32"]))


def test_parse_metrics_sums_model_series_only():
    text = """# HELP nv_inference_request_success Number of successful inference requests
nv_inference_request_success{model="deepfake",version="1"} 120
nv_inference_exec_count{model="deepfake",version="1"} 47
nv_inference_count{model="other",version="1"} 3
nv_gpu_utilization{gpu_uuid="GPU-1"} 0.5
"""
    m = parse_metrics(text)
    assert m[("nv_inference_request_success", "deepfake")] == 120
    assert m[("nv_inference_exec_count", "deepfake")] == 47
    assert m[("nv_inference_count", "other")] == 3
    assert not any(k[0] == "nv_gpu_utilization" for k in m)
