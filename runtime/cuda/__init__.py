"""CUDA sources shipped with fakewatch (``preprocess.cu``), compiled at run time by pycuda or CuPy.

The Python side lives in :mod:`fakewatch.runtime.cuda_preprocess`; this package only exists so the ``.cu`` file is
installed as package data and can be found with :func:`kernel_source_path`.
"""
from __future__ import annotations

from pathlib import Path

PREPROCESS_CU = "preprocess.cu"


def kernel_source_path(name: str = PREPROCESS_CU) -> Path:
    return Path(__file__).with_name(name)
