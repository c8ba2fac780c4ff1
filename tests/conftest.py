"""Shared fixtures and the one place the `gpu` marker's skip rule lives."""
from __future__ import annotations

import importlib.util

import pytest


def _has_cuda() -> bool:
    from pathlib import Path

    if not any(Path("/dev").glob("nvidia[0-9]*")) and not Path("/dev/nvhost-ctrl-gpu").exists():   # Jetson node
        return False                  # no NVIDIA device node: skip without importing anything heavy
    if importlib.util.find_spec("torch") is not None:   # a CUDA GPU without cupy/pycuda still runs the EP tests
        try:
            import torch
            if torch.cuda.is_available():
                return True
        except Exception:
            pass
    for mod in ("cupy", "pycuda"):
        if importlib.util.find_spec(mod) is not None:
            try:
                if mod == "cupy":
                    import cupy
                    return cupy.cuda.runtime.getDeviceCount() > 0
                import pycuda.driver as drv
                drv.init()
                return drv.Device.count() > 0
            except Exception:
                continue
    return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (cupy or pycuda with a device); none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_spec():
    """Contract of timm's tiny test_efficientnet at 64x64, full-frame ROI."""
    from fakewatch.core.checkpoint import default_spec

    return default_spec("test", roi="full")


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_spec):
    """A verified ONNX export (with sidecar) of a randomly initialised tiny EfficientNet. Needs torch+timm."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    import torch

    from fakewatch.core.checkpoint import build_model
    from fakewatch.export.onnx_export import export_onnx

    torch.manual_seed(0)
    model = build_model(tiny_spec, exportable=True)
    out = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export_onnx(model, tiny_spec, out)
    return out
