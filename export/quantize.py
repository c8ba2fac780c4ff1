"""FP32 ONNX -> INT8 ONNX with real calibration frames, one recipe per deployment target, plus a fidelity report.

    from fakewatch.export.quantize import quantize_onnx
    result = quantize_onnx("model.onnx", "model.int8.onnx", target="cpu", calib_inputs=["clips/"], method="minmax")

Recipes (measured, see docs/quantization.md): the wrong recipe makes INT8 *slower* than FP32 on a CPU (symmetric
int8 activations: 47 img/s vs 188 FP32 for B0 in ONNX Runtime), and the right CPU recipe is refused by TensorRT
(asymmetric zero points). So the target picks the recipe; nothing else about it is left to the user.
Always ``quantize_static`` with calibration data (never dynamic quantization, which re-measures ranges per frame).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fakewatch.core.contract import ModelSpec, embed_in_onnx, load_spec, sidecar_path, write_sidecar
from fakewatch.export.calibration import CalibrationError, FrameSet, collect_frames, split_holdout
from fakewatch.export.fidelity import FidelityReport, fidelity_path, fidelity_report

METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIB_FRAMES = 128
DEFAULT_HOLDOUT_FRAMES = 64


class QuantizationError(RuntimeError):
    """Quantization failed or its fidelity gate rejected the result (the FP32 model is never touched)."""


@dataclass(frozen=True)
class Recipe:
    """How one deployment target wants its INT8 graph (names are onnxruntime.quantization enum members)."""

    target: str
    quant_format: str                 # "QDQ" | "QOperator"
    activation_type: str              # "QUInt8" | "QInt8"
    weight_type: str
    per_channel: bool
    activation_symmetric: bool        # zero point 0 for activations (TensorRT demands it)
    op_types: tuple[str, ...]         # op types whose inputs get Q/DQ; others (Sigmoid!) stay float
    why: str
    exclude_output_ops: tuple[str, ...] = ()   # these ops' outputs stay float unless a quantized op consumes them
    quantize_bias: bool = True        # int32 bias Q/DQ (ORT fuses it); TensorRT wants float bias, int8 Q/DQ only
    # The stem conv (sees raw normalised pixels) and the layer producing the model output stay float: measured on
    # ImageNet Lite0, top-1 agreement with FP32 rose from 85 % to 95 % (cpu) and 87.5 % to 92.5 % (tensorrt).
    float_first_last: bool = True
    # the runtime backend this graph is tuned for: recorded in the artifact (the runtime's default backend for it)
    # and the one the fidelity report runs it on when installed
    backend: str = "onnxruntime"
    suffix: str = ".int8.onnx"        # default output name: MODEL<suffix>

    def extra_options(self) -> dict[str, Any]:
        return {"ActivationSymmetric": self.activation_symmetric, "WeightSymmetric": True,
                "QuantizeBias": self.quantize_bias}


# target -> recipe. CPU op types chosen by measurement with benchmarks/quant_speed.py-style runs (B0 + Lite0,
# batch 8, ORT CPU): see docs/quantization.md for the table of candidates and their throughput.
RECIPES: dict[str, Recipe] = {
    "cpu": Recipe(
        target="cpu", quant_format="QDQ", activation_type="QUInt8", weight_type="QInt8", per_channel=True,
        activation_symmetric=False, op_types=("Conv", "Gemm", "Add", "Mul", "Clip", "Relu", "GlobalAveragePool"),
        why="ONNX Runtime's x86 int8 kernels (u8 activations x s8 weights, VNNI/AVX2) fuse QDQ into QLinear* ops; "
            "symmetric s8 activations fall off that path and run ~4x slower than FP32"),
    "tensorrt": Recipe(
        target="tensorrt", quant_format="QDQ", activation_type="QInt8", weight_type="QInt8", per_channel=True,
        activation_symmetric=True, op_types=("Conv", "Gemm", "Add"), exclude_output_ops=("Conv", "Gemm"),
        quantize_bias=False,
        why="TensorRT 10+ explicit quantization: symmetric (zero point 0) int8 Q/DQ, per-channel weights; Q/DQ at "
            "Conv/Gemm inputs and residual Adds lets it fuse Conv+SiLU+Q; Sigmoid (SiLU, SE gates) and the final "
            "logit stay float", backend="tensorrt", suffix=".int8-trt.onnx"),
    "openvino": Recipe(
        target="openvino", quant_format="QDQ", activation_type="QUInt8", weight_type="QInt8", per_channel=True,
        activation_symmetric=False, op_types=("Conv", "Gemm", "Add"), exclude_output_ops=("Conv", "Gemm"),
        why="OpenVINO turns Q/DQ at Conv/Gemm inputs (u8 activations, s8 per-channel weights) and residual Adds into "
            "int8 kernels, depthwise included; the cpu recipe's quantized SiLU Mul blocks its Conv+SiLU fusion (B0 "
            "INT8 160 vs 290 img/s, batch 8, 2-core Xeon), and this graph runs 3.3x slower than the cpu recipe on "
            "ONNX Runtime for B0, hence its own target", backend="openvino", suffix=".int8-ov.onnx"),
}


def recipe_for(target: str) -> Recipe:
    try:
        return RECIPES[target]
    except KeyError:
        raise ValueError(f"unknown quantization target {target!r}; choose one of {sorted(RECIPES)}") from None


@dataclass
class QuantizeResult:
    path: Path
    spec: ModelSpec
    fidelity: FidelityReport
    fidelity_json: Path
    seconds: float
    calib: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        p = self.spec.provenance.get("quantization", {})
        lines = [f"quantized  {self.path} ({self.path.stat().st_size / 1e6:.2f} MB)" if self.path.exists()
                 else f"quantized  {self.path} (removed: gate failed)",
                 f"recipe     {p.get('target')}: {p.get('format')} act {p.get('activation_type')}"
                 f"{' symmetric' if p.get('activation_symmetric') else ' asymmetric'}, weights "
                 f"{p.get('weight_type')} {'per-channel' if p.get('per_channel') else 'per-tensor'}, "
                 f"method {p.get('method')}; tuned for {p.get('backend', 'onnxruntime')}",
                 f"ops        {', '.join(p.get('op_types_quantized', []))} "
                 f"({p.get('nodes_quantized')} nodes quantized; kept float: {', '.join(p.get('kept_float', []))})",
                 f"calib      {self.calib.get('samples')} samples from {self.calib.get('frames_read')} frames",
                 self.fidelity.summary(),
                 f"report     {self.fidelity_json}",
                 f"time       {self.seconds:.1f} s"]
        return "\n".join(lines)


# ---------------------------------------------------------------------- helpers
def _as_frames(inputs: Any, spec: ModelSpec, count: int, desc: str, progress: bool) -> FrameSet:
    """Sources (paths/URIs) -> FrameSet through the runtime preprocessing; a FrameSet/array passes through."""
    if isinstance(inputs, FrameSet):
        return inputs
    if isinstance(inputs, np.ndarray):
        want = (3, *spec.input_size)
        if inputs.ndim != 4 or tuple(inputs.shape[1:]) != want or inputs.dtype != np.float32:
            raise CalibrationError(f"{desc}: preprocessed inputs must be float32 (N, {', '.join(map(str, want))}), "
                                   f"got {inputs.dtype} {inputs.shape}")
        if len(inputs) == 0:
            raise CalibrationError(f"{desc}: empty input array")
        return FrameSet(inputs, np.full(len(inputs), np.nan, np.float32), [f"array#{i}" for i in range(len(inputs))],
                        {"samples": len(inputs), "frames_read": len(inputs)})
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return collect_frames(list(inputs), spec, count, desc=desc, progress=progress)


def _strided_reader(frames: np.ndarray, input_name: str, batch: int, progress: bool, desc: str):
    """Calibration reader in batches; ``set_range`` lets ORT collect one batch at a time (bounded memory)."""
    from onnxruntime.quantization import CalibrationDataReader
    from tqdm import tqdm

    n_batches = -(-len(frames) // batch)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.start, self.end, self.pos = 0, n_batches, 0
            self.bar = tqdm(total=len(frames), desc=desc, unit="sample", disable=not progress, leave=False)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.start, self.end, self.pos = start_index, min(end_index, n_batches), start_index

        def get_next(self):
            if self.pos >= self.end:
                return None
            chunk = frames[self.pos * batch:(self.pos + 1) * batch]
            self.pos += 1
            self.bar.update(len(chunk))
            return {input_name: np.ascontiguousarray(chunk)}

        def __len__(self) -> int:
            return n_batches

    return Reader()


def _final_output_producers(proto, output_names: Sequence[str]) -> list[Any]:
    return [n for n in proto.graph.node if any(o in output_names for o in n.output)]


def _first_last_nodes(proto, input_name: str, finals: Sequence[Any]) -> list[str]:
    """Names of the first Conv fed by the model input and of the compute node(s) producing the output."""
    first = [n.name for n in proto.graph.node if n.op_type == "Conv" and input_name in n.input][:1]
    last = [n.name for n in finals if n.op_type in ("Gemm", "MatMul", "Conv")]
    return [name for name in first + last if name]


def fp32_source_and_output(model_path: str | Path, out_path: str | Path | None, precision: str,
                           verb: str) -> tuple[Path, ModelSpec, Path]:
    """Check the FP32 source artifact and pick the output path (``model.<precision>.onnx``); never the source."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"model {model_path} does not exist; export one with `fakewatch export onnx`")
    spec = load_spec(model_path)
    if spec.precision != "fp32":
        raise ValueError(f"{model_path} is already {spec.precision}; {verb} the FP32 export instead")
    out = Path(out_path) if out_path else model_path.with_name(f"{model_path.stem}.{precision}.onnx")
    if out.resolve() == model_path.resolve():
        raise ValueError(f"output {out} would overwrite the FP32 model; pick another -o")
    return model_path, spec, out


def _remove_artifact(path: Path) -> None:
    path.unlink(missing_ok=True)
    sidecar_path(path).unlink(missing_ok=True)


# ---------------------------------------------------------------------- the API
def quantize_onnx(model_path: str | Path, out_path: str | Path | None = None, target: str = "cpu",
                  calib_inputs: Any = None, method: str = "minmax", *, calib_frames: int = DEFAULT_CALIB_FRAMES,
                  holdout_inputs: Any = None, holdout_frames: int = DEFAULT_HOLDOUT_FRAMES,
                  max_flip_rate: float | None = None, op_types: Sequence[str] | None = None,
                  batch: int = 8, progress: bool = True, recipe: Recipe | None = None) -> QuantizeResult:
    """Quantize an FP32 fakewatch ONNX artifact to INT8 for ``target`` ("cpu" | "openvino" | "tensorrt"; default
    output ``MODEL<recipe.suffix>``).

    ``calib_inputs``: sources (video files, image folders/files, live URIs, "demo") read through the runtime's ROI
    + preprocessing, or an already preprocessed float32 (N, 3, H, W) array / FrameSet. Held-out frames come from
    ``holdout_inputs`` when given, else ``holdout_frames`` samples are split off the calibration sources (never used
    for calibration). ``max_flip_rate`` turns the fidelity report into a gate: above it, the INT8 file is removed
    and :class:`QuantizationError` is raised. Returns a :class:`QuantizeResult`; the report JSON is written next to
    the artifact either way. ``op_types`` / ``recipe`` override the target's recipe (for measurements such as
    ``benchmarks/quant_speed.py --sweep``; the provenance records what was used).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    t0 = time.perf_counter()
    recipe = recipe or recipe_for(target)
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {list(METHODS)}")
    if out_path is None:
        out_path = Path(model_path).with_name(Path(model_path).stem + recipe.suffix)
    model_path, spec, out = fp32_source_and_output(model_path, out_path, "int8", "quantize")
    if calib_inputs is None or (isinstance(calib_inputs, (list, tuple)) and not calib_inputs):
        raise CalibrationError("no calibration sources given (--calib); pass videos, image folders or live "
                               "sources that look like the deployment footage")

    # 1. frames: calibration + disjoint held-out set, both through the runtime's ROI + preprocessing
    if holdout_inputs is not None:
        calib = _as_frames(calib_inputs, spec, calib_frames, "calibration frames", progress)
        holdout = _as_frames(holdout_inputs, spec, holdout_frames, "held-out frames", progress)
    else:
        both = _as_frames(calib_inputs, spec, calib_frames + holdout_frames, "calibration + held-out frames",
                          progress)
        calib, holdout = split_holdout(both, min(holdout_frames, len(both) // 2))

    method_enum = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                   "percentile": CalibrationMethod.Percentile}[method]
    op_list = list(op_types or recipe.op_types)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="fakewatch-quant-") as tmp:
        # 2. shape inference + graph cleanup first, as onnxruntime recommends (names stay stable)
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=False)
        pre_proto = onnx.load(str(pre))
        finals = _final_output_producers(pre_proto, [o.name for o in pre_proto.graph.output])
        extra = recipe.extra_options()
        # the final logit stays float (its producer's output gets no Q/DQ); collect one batch per pass
        extra.update(OpTypesToExcludeOutputQuantization=sorted({n.op_type for n in finals} |
                                                               set(recipe.exclude_output_ops)),
                     CalibStridedMinMax=1)
        if method == "percentile":
            extra["CalibTensorRangeSymmetric"] = recipe.activation_symmetric
        keep_float = _first_last_nodes(pre_proto, spec.input_name, finals) if recipe.float_first_last else []
        reader = _strided_reader(calib.inputs, spec.input_name, batch, progress, f"calibrating ({method})")
        try:
            quantize_static(str(pre), str(partial), reader, quant_format=QuantFormat[recipe.quant_format],
                            op_types_to_quantize=op_list, per_channel=recipe.per_channel,
                            activation_type=QuantType[recipe.activation_type],
                            weight_type=QuantType[recipe.weight_type], calibrate_method=method_enum,
                            nodes_to_exclude=keep_float, extra_options=extra)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise QuantizationError(f"onnxruntime quantize_static failed for {model_path} ({target} recipe, "
                                    f"{method}): {type(exc).__name__}: {exc}") from exc
        finally:
            reader.bar.close()

    # 3. contract + provenance, then save atomically
    proto = onnx.load(str(partial))
    q_nodes = [n for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    producer = {o: n.op_type for n in proto.graph.node for o in n.output}
    q_compute = [n for n in proto.graph.node
                 if n.op_type in op_list and any(producer.get(i) == "DequantizeLinear" for i in n.input)]
    quantized_ops = sorted({n.op_type for n in q_compute})
    float_ops = sorted({n.op_type for n in proto.graph.node
                        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and n.op_type not in quantized_ops})
    import onnxruntime

    q_spec = spec.replace(precision="int8").with_provenance(quantization={
        "tool": "fakewatch export quantize", "source": str(model_path), "target": target,
        "format": recipe.quant_format, "activation_type": recipe.activation_type,
        "activation_symmetric": recipe.activation_symmetric, "weight_type": recipe.weight_type,
        "weight_symmetric": True, "per_channel": recipe.per_channel, "method": method,
        "bias_quantized": recipe.quantize_bias, "outputs_kept_float_of": sorted(set(recipe.exclude_output_ops)),
        "op_types_requested": op_list, "op_types_quantized": quantized_ops, "kept_float": float_ops,
        "nodes_quantized": len(q_compute), "nodes_kept_float": keep_float,
        "qdq_nodes": len(q_nodes), "final_output_float": True, "why": recipe.why,
        "backend": recipe.backend,
        "calibration": {"samples": len(calib), **{k: v for k, v in calib.stats.items() if k != "samples"}},
        "holdout_samples": len(holdout), "onnxruntime": onnxruntime.__version__})
    embed_in_onnx(proto, q_spec)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise QuantizationError(f"onnx.checker rejected the quantized graph: {exc}") from None
    onnx.save(proto, str(partial))
    partial.replace(out)
    write_sidecar(out, q_spec)

    # 4. fidelity on held-out frames; the gate removes the INT8 artifact (FP32 untouched)
    report = fidelity_report(model_path, out, holdout.inputs, spec, precision="int8", labels=holdout.labels,
                             max_flip_rate=max_flip_rate,
                             holdout={"samples": len(holdout), "origins": holdout.origins[:20],
                                      **{k: v for k, v in holdout.stats.items() if k != "samples"}}, batch=batch,
                             candidate_backend=recipe.backend)
    report_path = report.write(fidelity_path(out))
    result = QuantizeResult(out, q_spec, report, report_path, time.perf_counter() - t0,
                            {"samples": len(calib), **calib.stats, "samples_used": len(calib)})
    result.calib["samples"] = len(calib)
    if not report.passed:
        _remove_artifact(out)
        raise QuantizationError(
            f"fidelity gate failed: {report.flips}/{report.samples} held-out decisions flipped "
            f"({report.flip_rate:.2%}) > --max-flip-rate {max_flip_rate:.2%}; removed {out} (the FP32 model "
            f"{model_path} is untouched; report kept at {report_path}). Try --method entropy/percentile, more "
            f"representative --calib frames, or FP16")
    return result
