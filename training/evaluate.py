"""``fakewatch train --eval-only``: score a checkpoint or an exported ONNX model on a dataset.

The model's contract decides the crops (ROI, margin, input size) so the numbers describe the artifact as the runtime
would run it. Frame metrics at the contract's threshold, plus the EER point and video-level AUC.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.core.metrics import Metrics, compute_metrics
from fakewatch.training.data import build_crops, discover
from fakewatch.training.dataset import CropDataset


def _onnx_predict(path: Path, dataset: CropDataset, batch_size: int) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    probs = []
    for start in range(0, len(dataset), batch_size):
        x = np.stack([dataset[i][0] for i in range(start, min(len(dataset), start + batch_size))])
        logit = sess.run(None, {name: x})[0].reshape(-1).astype(np.float64)
        probs.append(1.0 / (1.0 + np.exp(-logit)))
    return np.concatenate(probs) if probs else np.zeros(0)


def evaluate_artifact(artifact: str | Path, data: str | Path, *, synth: str = "none", frames_per_video: int = 32,
                      cache_dir: str | Path | None = None, seed: int = 0, batch_size: int = 32,
                      progress: bool = True, sbi_copies: int = 1) -> tuple[Metrics, dict[str, Any]]:
    """Metrics of ``artifact`` (fakewatch .pt or .onnx with contract) on every crop of ``data``."""
    from fakewatch.core.contract import load_spec

    artifact = Path(artifact)
    if not artifact.is_file():
        raise FileNotFoundError(f"--eval-only: model {artifact} does not exist")
    if artifact.suffix == ".onnx":
        spec = load_spec(artifact)
    else:
        from fakewatch.core.checkpoint import load_checkpoint
        model, spec, _notes = load_checkpoint(artifact)
    if spec.output != "fake_logit":
        raise ValueError(f"{artifact}: output {spec.output!r} is not a fake detector (needs 'fake_logit')")
    items = discover(data, require_fake=(synth == "none"))
    root = Path(data if Path(data).is_dir() else Path(data).parent)
    cache = Path(cache_dir) if cache_dir else root / ".fakewatch_crops"
    records, summary = build_crops(items, spec, cache, frames_per_video, progress=progress)
    ds = CropDataset(records, spec, synth=synth, train=False, seed=seed, sbi_copies=sbi_copies)
    if artifact.suffix == ".onnx":
        y = ds.labels
        p = _onnx_predict(artifact, ds, batch_size)
        loss = None
    else:
        import torch

        from fakewatch.training.trainer import predict
        y, p, loss = predict(model, ds, batch_size, torch.device("cpu"), progress=progress, desc="eval")
    m = compute_metrics(y, p, ds.video_ids, threshold=spec.threshold, loss=loss)
    summary.update({"artifact": str(artifact), "precision": spec.precision, "synth": synth, "items": len(ds),
                    "contract_threshold": spec.threshold})
    return m, summary


def write_report(path: str | Path, metrics: Metrics, summary: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps({"metrics": metrics.to_dict(), "data": summary}, indent=2) + "\n")
