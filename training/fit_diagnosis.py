"""Under- or over-fitting? Score a trained checkpoint on its *training* people and its validation people with the
same fakes: ``python -m fakewatch.training.fit_diagnosis runs/E/run/best.pt --out fit.json``.

The checkpoint carries its training config (provenance), so the crops, the identity split and the fake generators
are rebuilt exactly as the run saw them. Per split (train / val people), AUC of P(fake) (model in eval mode) for:

* ``paired_train_aug``: the training pairs themselves (``PairedSbiDataset``: landmark masks, work scale, the
  shared augmentation incl. H.264), ``--draws`` epochs' worth of draws;
* ``paired_clean``: the same pairs without the augmentation;
* ``val_style``: the trainer's validation fakes (``CropDataset``, ``--synth`` as trained, no augmentation);
* ``paired_seen_last_epoch`` (training people, runs without ``--fresh-draws`` only): the very pairs of the
  checkpoint's last training epoch (one fake per crop and epoch, so these are exactly what it trained on).

Training-people AUC near 1 with validation-people AUC far lower = identity overfit; both low = under-trained.
``fakewatch eval`` on a training-people manifest adds the honest-eval generator (box masks, swaps) to the picture.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from fakewatch.core.metrics import roc_auc
    return round(float(roc_auc(y, p)), 4)


def _score_pairs(model, ds, pairs_per_batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, P(fake)) of every crop of a paired dataset (items are [2, C, H, W] real + fake)."""
    import torch
    from torch.utils.data import DataLoader

    model.eval()
    ys, ps = [], []
    with torch.inference_mode():
        for x, y, _i in DataLoader(ds, batch_size=pairs_per_batch, shuffle=False):
            ps.append(torch.sigmoid(model(x.flatten(0, 1)).reshape(-1)).numpy())
            ys.append(y.flatten().numpy().astype(np.int64))
    return np.concatenate(ys), np.concatenate(ps)


def diagnose(checkpoint: Path, draws: int = 4, batch_size: int = 32) -> dict[str, Any]:
    from fakewatch.core.checkpoint import load_checkpoint
    from fakewatch.training.trainer import TrainConfig, prepare_data

    model, spec, _ = load_checkpoint(checkpoint)
    conf = dict(spec.provenance["training"]["config"])
    for k in ("swap_blends", "work_scale"):
        if conf.get(k) is not None:
            conf[k] = tuple(conf[k])
    if not conf.get("cache_dir") and (checkpoint.parent / "crop_cache").is_dir():
        conf["cache_dir"] = str(checkpoint.parent / "crop_cache")   # the run's own crops (trainer's default)
    cfg = TrainConfig(**{**conf, "resume": False, "progress": False})
    with tempfile.TemporaryDirectory() as tmp:   # prepare_data writes split.json (and crops without a cache) here
        return _diagnose(model, spec, conf, cfg, checkpoint, *prepare_data(cfg, spec, Path(tmp))[:2], draws,
                         batch_size)


def _diagnose(model, spec, conf, cfg, checkpoint, train_recs, val_recs, draws: int,
              batch_size: int) -> dict[str, Any]:
    import torch

    from fakewatch.training.augment import AugmentConfig
    from fakewatch.training.dataset import CropDataset
    from fakewatch.training.paired import PairedSbiDataset
    from fakewatch.training.trainer import predict

    aug = (AugmentConfig(p_h264=cfg.p_h264, p_resize=cfg.p_resize, resize_scale=(cfg.resize_min, 1.0))
           if cfg.augment else None)   # as the trainer builds it
    dev = torch.device("cpu")
    out: dict[str, Any] = {"checkpoint": str(checkpoint), "epoch": spec.provenance["training"].get("epoch"),
                           "train_config": {k: conf[k] for k in ("epochs", "steps_per_epoch", "batch_size", "lr",
                                                                 "input_size", "variant", "paired", "work_scale",
                                                                 "p_h264", "sbi_mask", "freeze_blocks")},
                           "draws": draws}
    for name, recs in (("train_people", train_recs), ("val_people", val_recs)):
        row: dict[str, Any] = {"people": sorted({r.video_id for r in recs}), "crops": len(recs)}
        for label, acfg in (("paired_train_aug", aug), ("paired_clean", None)):
            ds = PairedSbiDataset(recs, spec, seed=cfg.seed, augment_cfg=acfg,
                                  p_swap=cfg.p_swap if cfg.synth == "sbi+swap" else 0.0,
                                  swap_blends=cfg.swap_blends, work_scale=cfg.work_scale)
            ys, ps = [], []
            for e in range(draws):
                ds.set_epoch(1000 + e)   # draws the run never saw exactly, from the same generator
                y, p = _score_pairs(model, ds, batch_size // 2)
                ys.append(y)
                ps.append(p)
            row[label] = _auc(np.concatenate(ys), np.concatenate(ps))
        if name == "train_people":
            row["paired_seen_last_epoch"] = None
            epoch = spec.provenance["training"].get("epoch")
            if not conf.get("fresh_draws") and epoch:
                ds = PairedSbiDataset(recs, spec, seed=cfg.seed, augment_cfg=aug,
                                      p_swap=cfg.p_swap if cfg.synth == "sbi+swap" else 0.0,
                                      swap_blends=cfg.swap_blends, work_scale=cfg.work_scale)
                ds.set_epoch(int(epoch) - 1)   # provenance epochs count from 1
                row["paired_seen_last_epoch"] = _auc(*_score_pairs(model, ds, batch_size // 2))
        ds = CropDataset(recs, spec, synth=cfg.synth, train=False, seed=cfg.seed, sbi_copies=max(2, cfg.sbi_copies))
        y, p, _ = predict(model, ds, batch_size, dev, progress=False)
        row["val_style"] = _auc(y, p)
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="fakewatch .pt written by `fakewatch train` (best.pt / last.pt)")
    ap.add_argument("--out", type=Path, required=True, help="JSON result file")
    ap.add_argument("--draws", type=int, default=4, help="epochs' worth of training-pair draws per split")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        raise SystemExit(f"fit_diagnosis: checkpoint {args.checkpoint} does not exist (a run's best.pt or last.pt)")
    import torch
    torch.set_num_threads(args.threads)
    up0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    res = diagnose(args.checkpoint, args.draws)
    res["uptime_before"] = up0
    res["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    res["command"] = "python -m fakewatch.training.fit_diagnosis " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
