"""FP32 ONNX -> FP16 ONNX: half-precision weights and compute, float32 inputs/outputs (the contract's I/O types).

Uses onnxconverter-common's ``convert_float_to_float16`` with ``keep_io_types=True``: a Cast at the input and the
output keeps ``input`` / ``logit`` float32, so every runtime (and the CUDA preprocessing kernel) feeds the same
buffers as for FP32. TensorRT 11 takes precision from the ONNX itself (no FP16 builder flag), so this artifact is
how FP16 engines are built there. The result is verified to load and run in ONNX Runtime; with held-out frames
it gets the same fidelity report (and optional gate) as INT8.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakewatch.core.contract import ModelSpec, embed_in_onnx, sidecar_path, write_sidecar
from fakewatch.export.calibration import CalibrationError
from fakewatch.export.fidelity import FidelityReport, fidelity_path, fidelity_report, run_onnx

# Ops whose FP16 versions lose accuracy or lack kernels; they stay float32 behind Casts.
FP16_OP_BLOCK_LIST = ("Resize", "Range", "NonMaxSuppression", "TopK", "RoiAlign", "RandomUniform",
                      "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Loop", "If")


@dataclass
class Fp16Result:
    path: Path
    spec: ModelSpec
    fidelity: FidelityReport | None
    fidelity_json: Path | None
    seconds: float

    def summary(self) -> str:
        lines = [f"converted  {self.path} ({self.path.stat().st_size / 1e6:.2f} MB), float16 weights/compute, "
                 f"float32 I/O kept"]
        if self.fidelity is not None:
            lines += [self.fidelity.summary(), f"report     {self.fidelity_json}"]
        else:
            lines.append("fidelity   not measured (pass --holdout SOURCES to compare with FP32)")
        lines.append(f"time       {self.seconds:.1f} s")
        return "\n".join(lines)


def convert_fp16(model_path: str | Path, out_path: str | Path | None = None, *, holdout_inputs: Any = None,
                 holdout_frames: int = 64, max_flip_rate: float | None = None, progress: bool = True) -> Fp16Result:
    """Convert an FP32 fakewatch ONNX artifact to FP16 (see module docstring); raises on a failed gate."""
    import numpy as np
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError:
        raise RuntimeError("FP16 conversion needs onnxconverter-common: pip install 'fakewatch[export]'") from None
    from fakewatch.export.quantize import QuantizationError, _as_frames, fp32_source_and_output

    t0 = time.perf_counter()
    model_path, spec, out = fp32_source_and_output(model_path, out_path, "fp16", "convert")

    proto = onnx.load(str(model_path))
    import warnings

    with warnings.catch_warnings():   # one warning per tiny weight clamped to fp16's range: noise, not news
        warnings.simplefilter("ignore", UserWarning)
        half = float16.convert_float_to_float16(proto, keep_io_types=True,
                                                op_block_list=list(FP16_OP_BLOCK_LIST))
    io_types = {v.name: v.type.tensor_type.elem_type for v in [*half.graph.input, *half.graph.output]}
    if any(t != onnx.TensorProto.FLOAT for t in io_types.values()):
        raise RuntimeError(f"FP16 conversion changed the declared I/O types ({io_types}); refusing to write it")
    h_spec = spec.replace(precision="fp16").with_provenance(fp16={
        "tool": "fakewatch export fp16", "source": str(model_path), "converter": "onnxconverter_common.float16",
        "keep_io_types": True, "op_block_list": list(FP16_OP_BLOCK_LIST)})
    embed_in_onnx(half, h_spec)
    onnx.checker.check_model(half)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    onnx.save(half, str(partial))
    try:   # must load and run in ONNX Runtime with the contract's float32 input
        probe = np.zeros((1, 3, *spec.input_size), np.float32)
        got = run_onnx(partial, probe, spec)
        if got.shape != (1, spec.num_outputs) or not np.all(np.isfinite(got)):
            raise RuntimeError(f"FP16 model output {got.shape} / non-finite values on a zero input")
    except Exception:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    write_sidecar(out, h_spec)

    report = report_path = None
    if holdout_inputs is not None:
        try:
            holdout = _as_frames(holdout_inputs, spec, holdout_frames, "held-out frames", progress)
        except CalibrationError:
            out.unlink(missing_ok=True)
            sidecar_path(out).unlink(missing_ok=True)
            raise
        report = fidelity_report(model_path, out, holdout.inputs, spec, precision="fp16", labels=holdout.labels,
                                 max_flip_rate=max_flip_rate,
                                 holdout={"samples": len(holdout), "origins": holdout.origins[:20]})
        report_path = report.write(fidelity_path(out))
        if not report.passed:
            out.unlink(missing_ok=True)
            sidecar_path(out).unlink(missing_ok=True)
            raise QuantizationError(f"fidelity gate failed: {report.flip_rate:.2%} of held-out decisions flipped "
                                    f"> --max-flip-rate {max_flip_rate:.2%}; removed {out} (FP32 untouched; "
                                    f"report kept at {report_path})")
    return Fp16Result(out, h_spec, report, report_path, time.perf_counter() - t0)
