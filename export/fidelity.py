"""Fidelity of a reduced-precision artifact (INT8/FP16) against its FP32 source, on held-out frames.

Reported: max / mean absolute logit difference, the decision-flip rate at the contract's threshold
(``fake_logit`` models: sigmoid(logit) >= threshold; ``class_logits`` models: top-1 class, reported as top-1
agreement too), and the AUC of both models when the held-out frames carry both real and fake labels.
The report is printed and written as JSON next to the artifact (``model.int8.onnx.fidelity.json``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.core.metrics import sigmoid

FIDELITY_SUFFIX = ".fidelity.json"


def fidelity_path(artifact: str | Path) -> Path:
    p = Path(artifact)
    return p.with_name(p.name + FIDELITY_SUFFIX)


def run_onnx(path: str | Path, inputs: np.ndarray, spec: ModelSpec, batch: int = 8,
             threads: int | None = None) -> np.ndarray:
    """Outputs of an ONNX artifact on ``inputs`` with ONNX Runtime's CPU provider (float32, batched)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    outs = [session.run([spec.output_name], {spec.input_name: np.ascontiguousarray(inputs[i:i + batch])})[0]
            for i in range(0, len(inputs), batch)]
    return np.concatenate(outs).astype(np.float32)


def run_artifact(path: str | Path, inputs: np.ndarray, spec: ModelSpec, backend: str = "onnxruntime",
                 batch: int = 8) -> tuple[np.ndarray, str]:
    """Outputs of an ONNX artifact on the backend it deploys on, and that backend's name with its version.

    ``onnxruntime`` (and ``tensorrt``, whose Q/DQ ONNX is measured here as the portable reference) run through
    :func:`run_onnx`; ``openvino`` through the runtime's OpenVINO runner when installed, else ONNX Runtime (the
    report says which ran).
    """
    if backend == "openvino":
        import importlib.util

        if importlib.util.find_spec("openvino") is not None:
            from fakewatch.runtime.backends.openvino_runner import OpenVINORunner

            with OpenVINORunner(path, spec) as runner:
                out = np.concatenate([runner.infer(np.ascontiguousarray(inputs[i:i + batch]))
                                      for i in range(0, len(inputs), batch)])
            return out, f"openvino {runner.version}"
    import onnxruntime

    return run_onnx(path, inputs, spec, batch), f"onnxruntime {onnxruntime.__version__}"


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC over the labelled samples (NaN label = unknown); None unless both classes are present."""
    from fakewatch.core.metrics import roc_auc  # numpy-only; one AUC implementation for training and export

    keep = ~np.isnan(labels)
    y = (labels[keep] > 0.5).astype(np.int64)
    if y.size == 0 or y.min() == y.max():
        return None
    return roc_auc(y, np.asarray(scores, np.float64)[keep])


@dataclass
class FidelityReport:
    reference: str
    candidate: str
    precision: str
    samples: int
    output: str
    max_abs_diff: float
    mean_abs_diff: float
    flip_rate: float                 # fraction of held-out samples whose decision (or top-1 class) changed
    flips: int
    threshold: float | None = None   # fake_logit models
    top1_agreement: float | None = None   # class_logits models
    auc_reference: float | None = None
    auc_candidate: float | None = None
    max_flip_rate: float | None = None   # the gate, when one was set
    passed: bool = True
    evaluated_with: str = ""         # the backend (and version) the candidate ran on; the reference runs on ORT
    holdout: dict[str, Any] = field(default_factory=dict)   # where the held-out frames came from

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    def summary(self) -> str:
        on = f" ({self.precision} on {self.evaluated_with})" if self.evaluated_with else ""
        lines = [f"fidelity   {self.precision} vs fp32 on {self.samples} held-out sample(s){on}",
                 f"  logit    max |diff| {self.max_abs_diff:.4g}, mean |diff| {self.mean_abs_diff:.4g}"]
        if self.top1_agreement is not None:
            lines.append(f"  top-1    agreement with fp32 {self.top1_agreement:.1%} "
                         f"({self.samples - self.flips}/{self.samples})")
        else:
            lines.append(f"  flips    {self.flips}/{self.samples} = {self.flip_rate:.2%} of decisions changed at "
                         f"threshold {self.threshold:g}")
        if self.auc_reference is not None:
            lines.append(f"  AUC      fp32 {self.auc_reference:.4f} -> {self.precision} {self.auc_candidate:.4f}")
        if self.max_flip_rate is not None:
            verdict = "PASS" if self.passed else "FAIL"
            lines.append(f"  gate     {verdict}: flip rate {self.flip_rate:.2%} vs --max-flip-rate "
                         f"{self.max_flip_rate:.2%}")
        return "\n".join(lines)


def compare_outputs(ref: np.ndarray, cand: np.ndarray, spec: ModelSpec, labels: np.ndarray | None = None
                    ) -> dict[str, Any]:
    """The numbers of a :class:`FidelityReport` from two output arrays of shape (N, num_outputs)."""
    if ref.shape != cand.shape:
        raise ValueError(f"fidelity: output shapes differ, fp32 {ref.shape} vs candidate {cand.shape}")
    diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64))
    out: dict[str, Any] = {"samples": int(ref.shape[0]), "output": spec.output,
                           "max_abs_diff": float(diff.max()) if diff.size else 0.0,
                           "mean_abs_diff": float(diff.mean()) if diff.size else 0.0}
    if spec.output == "class_logits":
        agree = ref.argmax(axis=1) == cand.argmax(axis=1)
        out.update(flips=int((~agree).sum()), flip_rate=float(1.0 - agree.mean()),
                   top1_agreement=float(agree.mean()))
    else:
        p_ref, p_cand = sigmoid(ref[:, 0]), sigmoid(cand[:, 0])
        flipped = (p_ref >= spec.threshold) != (p_cand >= spec.threshold)
        out.update(flips=int(flipped.sum()), flip_rate=float(flipped.mean()), threshold=float(spec.threshold))
        if labels is not None:
            out.update(auc_reference=auc(ref[:, 0], labels), auc_candidate=auc(cand[:, 0], labels))
    return out


def fidelity_report(reference: str | Path, candidate: str | Path, inputs: np.ndarray, spec: ModelSpec, *,
                    precision: str, labels: np.ndarray | None = None, max_flip_rate: float | None = None,
                    holdout: dict[str, Any] | None = None, batch: int = 8,
                    candidate_backend: str = "onnxruntime") -> FidelityReport:
    """Run both artifacts on the held-out ``inputs`` and compare (see module docstring). The FP32 reference runs on
    ONNX Runtime, the candidate on ``candidate_backend`` (:func:`run_artifact`)."""
    ref = run_onnx(reference, inputs, spec, batch)
    cand, evaluated_with = run_artifact(candidate, inputs, spec, candidate_backend, batch)
    nums = compare_outputs(ref, cand, spec, labels)
    report = FidelityReport(reference=str(reference), candidate=str(candidate), precision=precision,
                            max_flip_rate=max_flip_rate, holdout=dict(holdout or {}), evaluated_with=evaluated_with,
                            **nums)
    if max_flip_rate is not None:
        report.passed = report.flip_rate <= max_flip_rate
    return report
