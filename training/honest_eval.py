"""Honest evaluation on people the model never saw: ``fakewatch eval MODEL PEOPLE``.

``PEOPLE`` is a manifest ``path,label,video_id`` whose ``video_id`` is the person (``fakewatch.training.identities``
writes one), or a ``real/`` folder with one sub-folder per person. Every person in it must be unseen by the model;
the report is per sample type, and every interval is a bootstrap **over people** (resampling identities, not frames:
frames of one person are not independent).

Samples (all from the real face crops, cut by the model's own contract, as the runtime does):

* ``real``: the crops as they are; ``real_h264_crf<Q>``: each crop re-encoded with H.264 (libx264, ffmpeg) at
  constant quality Q. Reported: false-positive rate at the model's threshold (the number a user feels).
* ``sbi``: self-blends of each crop (``fakewatch.core.sbi``, what the model trained on).
* ``swap_<blend>``: classic face swaps between *two different* people of the set (source face warped onto the
  target's face box, pasted by Poisson / Laplacian-pyramid / colour-transfer blending, ``training/swaps.py``).
  A model trained on self-blends only never saw these: a held-out manipulation type.

Per fake type: AUC against the clean reals (95 % bootstrap interval over people), TPR at 1 % FPR (threshold taken
from the clean reals' scores) and TPR at the model's threshold.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fakewatch.core.metrics import roc_auc, roc_curve
from fakewatch.training.augment import h264

DEFAULT_CRFS = (23, 32, 40)
DEFAULT_BLENDS = ("poisson", "laplacian", "colour_transfer")


@dataclass(frozen=True)
class EvalConfig:
    frames_per_video: int = 16
    sbi_copies: int = 2
    swaps_per_crop: int = 1           # per blend: swaps made onto each target crop
    crfs: tuple[int, ...] = DEFAULT_CRFS
    blends: tuple[str, ...] = DEFAULT_BLENDS
    low_fpr: float = 0.01
    bootstrap: int = 1000
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.frames_per_video < 1 or self.sbi_copies < 0 or self.swaps_per_crop < 0:
            raise ValueError("frames_per_video must be >= 1, sbi_copies and swaps_per_crop >= 0")
        if not all(0 <= q <= 51 for q in self.crfs):
            raise ValueError(f"H.264 CRF values must be in 0..51, got {self.crfs}")
        if not 0.0 < self.low_fpr < 1.0:
            raise ValueError(f"low_fpr must be in (0, 1), got {self.low_fpr}")
        if self.bootstrap < 0:
            raise ValueError("bootstrap must be >= 0")


@dataclass
class Samples:
    """Images to score, each with its sample type and person."""
    images: list[np.ndarray] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)

    def add(self, image: np.ndarray, kind: str, person: str) -> None:
        self.images.append(image)
        self.kinds.append(kind)
        self.people.append(person)


# ------------------------------------------------------------------------------------------------ samples
def make_samples(records: Sequence[Any], load: Callable[[Any], np.ndarray], cfg: EvalConfig,
                 progress: bool = False) -> Samples:
    """Reals, re-encoded reals, self-blends and cross-person swaps of ``records`` (CropRecords: file, video_id =
    person, face_box)."""
    from fakewatch.core.sbi import self_blend
    from fakewatch.training._progress import bar
    from fakewatch.training.swaps import face_swap

    people = sorted({r.video_id for r in records})
    if len(people) < 2 and cfg.swaps_per_crop and cfg.blends:
        raise ValueError(f"face swaps need at least 2 people; the data has {people}")
    by_person = {p: [r for r in records if r.video_id == p] for p in people}
    out = Samples()
    for i, rec in enumerate(bar(records, desc="samples", unit="crop", disable=not progress)):
        img = load(rec)
        rng = np.random.default_rng([cfg.seed, i])
        out.add(img, "real", rec.video_id)
        for q in cfg.crfs:
            out.add(h264(img, q), f"real_h264_crf{q}", rec.video_id)
        for _ in range(cfg.sbi_copies):
            out.add(self_blend(img, rec.face_box, rng)[0], "sbi", rec.video_id)
        others = [p for p in people if p != rec.video_id]
        for blend in cfg.blends:
            for _ in range(cfg.swaps_per_crop):
                donor_person = others[int(rng.integers(len(others)))]
                donor = by_person[donor_person][int(rng.integers(len(by_person[donor_person])))]
                fake = face_swap(load(donor), donor.face_box, img, rec.face_box, rng, blend)
                out.add(fake, f"swap_{blend}", rec.video_id)   # the target's person: it is their video
    return out


# ------------------------------------------------------------------------------------------------ metrics
def tpr_at_fpr(real_scores: np.ndarray, fake_scores: np.ndarray, fpr: float) -> tuple[float, float]:
    """(TPR, threshold) where the threshold lets at most ``fpr`` of the reals through as fake."""
    real_scores = np.sort(np.asarray(real_scores, np.float64))
    n = len(real_scores)
    k = int(np.floor(fpr * n + 1e-9))                    # reals allowed at or above the threshold
    thr = float(np.nextafter(real_scores[n - k - 1], np.inf)) if k < n else -np.inf
    return float(np.mean(np.asarray(fake_scores) >= thr)), thr


def person_balanced_auc(labels: np.ndarray, scores: np.ndarray, people: np.ndarray) -> float:
    """AUC in which every person weighs the same on each side: a sample's weight is 1 / (its person's samples of its
    class). The pooled AUC is crop-weighted, so one person with many crops (the demo man: 16 of the 26 test crops)
    sets it alone (training/results/demo_model/swap_diagnosis)."""
    y, s, p = np.asarray(labels).astype(bool), np.asarray(scores, np.float64), np.asarray(people)
    if y.all() or not y.any():
        return float("nan")
    w = np.empty(len(s))
    for cls in (True, False):
        sel = y == cls
        names, inv, counts = np.unique(p[sel], return_inverse=True, return_counts=True)
        w[sel] = 1.0 / counts[inv]
    sp, sn, wp, wn = s[y], s[~y], w[y], w[~y]
    wins = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
    return float((wp[:, None] * wn[None, :] * wins).sum() / (wp.sum() * wn.sum()))


def grouped_bootstrap(people: np.ndarray, stat: Callable[[np.ndarray], float], n: int,
                      seed: int) -> tuple[float, float] | None:
    """95 % percentile interval of ``stat(index)`` over resamples of whole people (identities) with replacement."""
    if n <= 0:
        return None
    uniq = np.unique(people)
    idx_of = {p: np.nonzero(people == p)[0] for p in uniq}
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        pick = rng.choice(uniq, size=len(uniq), replace=True)
        v = stat(np.concatenate([idx_of[p] for p in pick]))
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return None
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)


def report(scores: np.ndarray, kinds: Sequence[str], people: Sequence[str], threshold: float,
           cfg: EvalConfig) -> dict[str, Any]:
    """Per-type metrics (see module docstring) from P(fake) scores."""
    scores = np.asarray(scores, np.float64)
    kinds_a, people_a = np.asarray(kinds), np.asarray(people)
    real = kinds_a == "real"
    if not real.any():
        raise ValueError("no clean real samples to evaluate against")
    reals: dict[str, Any] = {}
    for kind in sorted({k for k in kinds if k.startswith("real")}, key=lambda k: (k != "real", k)):
        sel = kinds_a == kind
        pos = scores[sel] >= threshold

        def fpr_of(ix: np.ndarray, _sel=sel) -> float:
            s = scores[ix][_sel[ix]]
            return float(np.mean(s >= threshold)) if len(s) else float("nan")

        per_person = {str(p): round(float(np.mean(pos[people_a[sel] == p])), 4) for p in np.unique(people_a[sel])}
        reals[kind] = {"n": int(sel.sum()), "people": len(per_person),
                       "fpr_at_threshold": round(float(pos.mean()), 4),
                       "fpr_mean_over_people": round(float(np.mean(list(per_person.values()))), 4),
                       "fpr_ci95": grouped_bootstrap(people_a, fpr_of, cfg.bootstrap, cfg.seed),
                       "fpr_per_person": per_person}
    fakes: dict[str, Any] = {}
    for kind in sorted({k for k in kinds if not k.startswith("real")}):
        sel = kinds_a == kind
        pair = real | sel
        y = sel[pair].astype(np.int64)
        s, pp = scores[pair], people_a[pair]

        def auc_of(ix: np.ndarray, _y=y, _s=s) -> float:
            return roc_auc(_y[ix], _s[ix])

        tpr, thr = tpr_at_fpr(scores[real], scores[sel], cfg.low_fpr)
        fakes[kind] = {"n": int(sel.sum()), "auc": round(roc_auc(y, s), 4),
                       "auc_person_balanced": round(person_balanced_auc(y, s, pp), 4),
                       "auc_ci95": grouped_bootstrap(pp, auc_of, cfg.bootstrap, cfg.seed),
                       f"tpr_at_fpr{cfg.low_fpr:g}": round(tpr, 4), f"threshold_at_fpr{cfg.low_fpr:g}": thr,
                       "tpr_at_threshold": round(float(np.mean(scores[sel] >= threshold)), 4)}
    return {"threshold": threshold, "people": sorted(set(people)), "reals": reals, "fakes": fakes}


def summary_line(rep: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a README row needs."""
    out: dict[str, Any] = {"threshold": rep["threshold"], "people": len(rep["people"]),
                           "fpr_unseen_real": rep["reals"]["real"]["fpr_at_threshold"],
                           "fpr_unseen_real_mean_over_people": rep["reals"]["real"]["fpr_mean_over_people"]}
    for k, v in rep["reals"].items():
        if k != "real":
            out[f"fpr_{k}"] = v["fpr_at_threshold"]
    for k, v in rep["fakes"].items():
        out[f"auc_{k}"] = v["auc"]
    for k, v in rep["fakes"].items():
        if "auc_person_balanced" in v:
            out[f"auc_person_balanced_{k}"] = v["auc_person_balanced"]
    return out


# ------------------------------------------------------------------------------------------------ outputs
def write_markdown(path: str | Path, rep: dict[str, Any], meta: dict[str, Any]) -> None:
    low = next((k for k in next(iter(rep["fakes"].values()), {}) if k.startswith("tpr_at_fpr")), "tpr_at_fpr")
    lines = [f"# fakewatch eval: {meta.get('model', '')}", "",
             f"People: {', '.join(rep['people'])}.", ""] + ([meta["note"], ""] if meta.get("note") else []) + [
             f"Threshold: the model's own, P(fake) >= {rep['threshold']:g}. Intervals: 95 % bootstrap over people.",
             "", "| reals | n | people | FPR at threshold | 95 % CI | mean FPR over people |",
             "|---|---|---|---|---|---|"]
    for k, v in rep["reals"].items():
        lines.append(f"| {k} | {v['n']} | {v['people']} | {v['fpr_at_threshold']:.3f} | {v['fpr_ci95']} | "
                     f"{v['fpr_mean_over_people']:.3f} |")
    lines += ["", f"| fakes | n | AUC vs real | 95 % CI | AUC, every person weighted equally | "
                  f"{low.replace('_', ' ')} | TPR at threshold |", "|---|---|---|---|---|---|---|"]
    for k, v in rep["fakes"].items():
        lines.append(f"| {k} | {v['n']} | {v['auc']:.3f} | {v['auc_ci95']} | "
                     f"{v.get('auc_person_balanced', float('nan')):.3f} | {v.get(low, float('nan')):.3f} | "
                     f"{v['tpr_at_threshold']:.3f} |")
    kinds = list(rep["reals"])
    lines += ["", "False-positive rate per person (share of that person's real crops flagged FAKE):", "",
              "| person | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for person in rep["people"]:
        cells = [rep["reals"][k]["fpr_per_person"].get(person) for k in kinds]
        lines.append(f"| {person} | " + " | ".join("" if c is None else f"{c:.2f}" for c in cells) + " |")
    if meta.get("command"):
        lines += ["", "Written by:", "", "```bash", meta["command"], "```"]
    Path(path).write_text("\n".join(lines) + "\n")


def plot(path: str | Path, scores: np.ndarray, kinds: Sequence[str], rep: dict[str, Any], title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, kinds_a = np.asarray(scores), np.asarray(kinds)
    real = kinds_a == "real"
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, v in rep["fakes"].items():
        sel = real | (kinds_a == kind)
        fpr, tpr, _ = roc_curve((kinds_a[sel] == kind).astype(int), scores[sel])
        a.plot(fpr, tpr, label=f"{kind} (AUC {v['auc']:.3f})")
    a.plot([0, 1], [0, 1], "k:", lw=0.8)
    a.set_xlabel("false-positive rate (unseen real people)")
    a.set_ylabel("true-positive rate")
    a.set_title("ROC per manipulation type")
    a.legend(fontsize=8, loc="lower right")
    names = list(rep["reals"])
    vals = [100 * rep["reals"][k]["fpr_at_threshold"] for k in names]
    b.bar(range(len(names)), vals, color="tab:red")
    b.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    b.set_ylabel("real faces flagged FAKE at the threshold (%)")
    b.set_title(f"false alarms on unseen people (threshold {rep['threshold']:g})")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ scoring
def score_images(artifact: str | Path, images: Sequence[np.ndarray], batch_size: int = 32,
                 progress: bool = False) -> tuple[np.ndarray, Any]:
    """(P(fake) per crop image, spec) for a fakewatch .onnx (ONNX Runtime, CPU) or .pt checkpoint (torch)."""
    from fakewatch.core.metrics import sigmoid
    from fakewatch.core.preprocess import preprocess
    from fakewatch.core.roi import full_box
    from fakewatch.training._progress import bar

    artifact = Path(artifact)
    spec, run = _runner(artifact)
    out = []
    for start in bar(range(0, len(images), batch_size), desc="score", unit="batch", disable=not progress):
        chunk = images[start:start + batch_size]
        x = preprocess(list(chunk), [full_box(im) for im in chunk], spec)
        out.append(sigmoid(run(x).reshape(-1)))
    return (np.concatenate(out) if out else np.zeros(0)), spec


def load_spec_of(artifact: str | Path):
    artifact = Path(artifact)
    if not artifact.is_file():
        raise FileNotFoundError(f"fakewatch eval: model {artifact} does not exist (a .onnx from `fakewatch export` "
                                f"or a .pt from `fakewatch train`)")
    if artifact.suffix == ".onnx":
        from fakewatch.core.contract import load_spec
        return load_spec(artifact)
    from fakewatch.core.checkpoint import load_checkpoint
    return load_checkpoint(artifact)[1]


def _runner(artifact: Path):
    spec = load_spec_of(artifact)
    if spec.output != "fake_logit":
        raise ValueError(f"{artifact}: output {spec.output!r} is not a fake detector (needs 'fake_logit')")
    if artifact.suffix == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return spec, lambda x: sess.run(None, {name: x})[0].astype(np.float64)
    import torch

    from fakewatch.core.checkpoint import load_checkpoint
    model = load_checkpoint(artifact)[0].eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy().astype(np.float64)
    return spec, run


def evaluate_people(artifact: str | Path, data: str | Path, cfg: EvalConfig = EvalConfig(), *,
                    cache_dir: str | Path | None = None, progress: bool = True) -> tuple[dict, np.ndarray, Samples]:
    """Build crops of ``data`` with the model's contract, make the samples, score them, report."""
    from fakewatch.training.data import build_crops, discover, load_crop

    spec = load_spec_of(artifact)
    items = discover(data, require_fake=False)
    items = [it for it in items if it.label == 0]   # fakes are made here; fake media in the data are not used
    data = Path(data)
    cache = Path(cache_dir) if cache_dir else (data if data.is_dir() else data.parent) / ".fakewatch_crops"
    records, crop_summary = build_crops(items, spec, cache, cfg.frames_per_video, progress=progress)
    samples = make_samples(records, load_crop, cfg, progress=progress)
    scores, _ = score_images(artifact, samples.images, cfg.batch_size, progress=progress)
    rep = report(scores, samples.kinds, samples.people, float(spec.threshold), cfg)
    rep["data"] = {**crop_summary, "data": str(data), "samples": len(samples.kinds)}
    return rep, scores, samples


def write_report(path: str | Path, rep: dict[str, Any], cfg: EvalConfig, meta: dict[str, Any]) -> None:
    from dataclasses import asdict
    doc = {"meta": meta, "config": asdict(cfg), "summary": summary_line(rep), **rep}
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
