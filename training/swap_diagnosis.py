"""Why do face swaps between unseen people score *below* chance? No training, only scoring:
``python -m fakewatch.training.swap_diagnosis MODEL.onnx [MODEL2.onnx ...] --people test_people.csv --out d.json``.

For each model (fakewatch .onnx or .pt) and the real crops of ``--people`` (cut by the model's contract, as
``fakewatch eval`` cuts them), it makes the same face swaps as ``fakewatch eval`` (``training/swaps.py``: each crop
the target of one swap per blend, donor = another person) but keeps **which donor** each swap came from, and asks:

1. *Composition or cue?* The pooled AUC compares every swap with every real. Also reported: the AUC without one
   person (``--dominant``, default the demo man, 16 of the 26 test crops), the within-person AUC (swaps onto person
   p against p's own reals, averaged over p), and the share of swaps that score below the very real crop they were
   pasted onto.
2. *What differs between a swap and its target real crop?* Image features on what the model sees (crop resized to
   the input size by the contract), inside the inner face box: sharpness (variance of the Laplacian),
   high-frequency energy (share of spectral power above half Nyquist), 8x8 JPEG blockiness (native crop), the
   face's native width in pixels (target's and donor's), colour (saturation, LAB a/b). Rank correlation (Spearman)
   of each feature difference with the score difference (swap - target), and of the swap's score with its donor's
   own real score.
3. *Which way does a look move a real face?* Every real crop after a mild blur, JPEG, down-up-scaling, sharpening,
   noise or H.264 re-encode (:data:`PERTURBATIONS`), scored again: mean change of P(fake), share moved toward FAKE,
   FPR at the model's threshold, per person.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from fakewatch.training.augment import h264, jpeg


def _blur(s: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda im: cv2.GaussianBlur(im, (0, 0), sigmaX=s)


def _downup(f: float) -> Callable[[np.ndarray], np.ndarray]:
    def run(im: np.ndarray) -> np.ndarray:
        h, w = im.shape[:2]
        small = cv2.resize(im, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return run


def _sharpen(amount: float) -> Callable[[np.ndarray], np.ndarray]:
    def run(im: np.ndarray) -> np.ndarray:
        soft = cv2.GaussianBlur(im, (0, 0), sigmaX=1.0)
        return np.clip(im.astype(np.float32) * (1 + amount) - soft.astype(np.float32) * amount, 0, 255).astype(
            np.uint8)
    return run


def _noise(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    def run(im: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(int(im[::7, ::7].sum()) % 2**32)   # deterministic per crop
        return np.clip(im.astype(np.float32) + rng.normal(0, sigma, im.shape), 0, 255).astype(np.uint8)
    return run


def _small(width: int, interp: int, noise: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """The crop as a small camera would have delivered it: ``width`` pixels wide (the demo man's crops are ~100),
    kept small (the model upscales it, as it does his), optionally with sensor-like noise."""
    def run(im: np.ndarray) -> np.ndarray:
        h, w = im.shape[:2]
        if w <= width:
            out = im
        else:
            out = cv2.resize(im, (width, max(1, round(h * width / w))), interpolation=interp)
        return _noise(noise)(out) if noise else out
    return run


def _chroma_sub(model_width: int = 112) -> Callable[[np.ndarray], np.ndarray]:
    """4:2:0-like colour: Cr/Cb at half the *model's* resolution (as a ~100-pixel video crop has them), luma kept."""
    def run(im: np.ndarray) -> np.ndarray:
        h, w = im.shape[:2]
        ycc = cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb)
        cw = max(2, model_width // 2)
        ch = max(2, round(h * cw / w))
        for c in (1, 2):
            small = cv2.resize(ycc[..., c], (cw, ch), interpolation=cv2.INTER_AREA)
            ycc[..., c] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)
    return run


def _luma_blur(s: float) -> Callable[[np.ndarray], np.ndarray]:
    def run(im: np.ndarray) -> np.ndarray:
        ycc = cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb)
        ycc[..., 0] = cv2.GaussianBlur(ycc[..., 0], (0, 0), sigmaX=s)
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)
    return run


def _region_blur(s: float, inside: bool) -> Callable[[np.ndarray, Sequence[int]], np.ndarray]:
    """Blur only inside the face box (the face's own texture) or only outside it (background, hair, shoulders):
    which of the two carries what the model reads as FAKE?"""
    def run(im: np.ndarray, box: Sequence[int]) -> np.ndarray:
        soft = cv2.GaussianBlur(im, (0, 0), sigmaX=s * im.shape[1] / 112)   # s in model-input pixels
        m = np.zeros(im.shape[:2], bool)
        x0, y0, x1, y1 = box
        m[max(0, y0):y1, max(0, x0):x1] = True
        out = im.copy()
        sel = m if inside else ~m
        out[sel] = soft[sel]
        return out
    return run


# mild, realistic looks a camera / uploader / swap tool gives a real face; applied to the native crop
PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "blur_s0.6": _blur(0.6),
    "blur_s1.2": _blur(1.2),
    "jpeg_q90": lambda im: jpeg(im, 90),
    "jpeg_q60": lambda im: jpeg(im, 60),
    "jpeg_q30": lambda im: jpeg(im, 30),
    "downup_0.75": _downup(0.75),
    "downup_0.5": _downup(0.5),
    "sharpen_0.5": _sharpen(0.5),
    "sharpen_1.0": _sharpen(1.0),
    "noise_s3": _noise(3.0),
    "h264_crf32": lambda im: h264(im, 32),
    # photo faces made to look like a small webcam face (what the demo man is): smooth / aliased / noisy
    "small100_area": _small(100, cv2.INTER_AREA),
    "small100_nearest": _small(100, cv2.INTER_NEAREST),
    "small100_area_noise4": _small(100, cv2.INTER_AREA, 4.0),
    "small100_area_sharpen": lambda im: _sharpen(0.7)(_small(100, cv2.INTER_AREA)(im)),
    # colour vs luma resolution: is a luma/chroma sharpness mismatch (video 4:2:0) read as a blend?
    "chroma_half_model_res": _chroma_sub(),
    "luma_blur_s0.8": _luma_blur(0.8),
    "greyscale": lambda im: cv2.cvtColor(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR),
}
# perturbations that need the face box (im, box) -> im
BOX_PERTURBATIONS: dict[str, Callable[[np.ndarray, Sequence[int]], np.ndarray]] = {
    "blur_inside_face_s1.5": _region_blur(1.5, inside=True),
    "blur_outside_face_s1.5": _region_blur(1.5, inside=False),
}


# ------------------------------------------------------------------------------------------------ features
def _model_view(img: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)


def _inner(img: np.ndarray, box: Sequence[int], native_shape: tuple[int, ...]) -> np.ndarray:
    """The inner face (middle 60 % of the face box: where swaps paste) of an image resized from ``native_shape``."""
    h, w = img.shape[:2]
    sy, sx = h / native_shape[0], w / native_shape[1]
    x0, y0, x1, y1 = box
    cx0, cx1 = x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0)
    cy0, cy1 = y0 + 0.2 * (y1 - y0), y1 - 0.15 * (y1 - y0)
    a = img[max(0, int(cy0 * sy)):max(1, int(np.ceil(cy1 * sy))), max(0, int(cx0 * sx)):max(1, int(np.ceil(cx1 * sx)))]
    return a if a.size else img


def hf_fraction(grey: np.ndarray) -> float:
    """Share of (non-DC) spectral power above half the Nyquist frequency."""
    g = grey.astype(np.float64) - grey.mean()
    p = np.abs(np.fft.fft2(g * np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1])))) ** 2
    fy = np.fft.fftfreq(g.shape[0])[:, None]
    fx = np.fft.fftfreq(g.shape[1])[None, :]
    r = np.sqrt(fx ** 2 + fy ** 2)
    total = p[r > 0].sum()
    return float(p[r > 0.25].sum() / total) if total > 0 else 0.0


def blockiness(grey: np.ndarray) -> float:
    """8x8 grid strength: mean |horizontal step| on the strongest column phase mod 8 / median over phases."""
    d = np.abs(np.diff(grey.astype(np.float32), axis=1)).mean(axis=0)
    phases = np.array([d[k::8].mean() for k in range(8)]) if len(d) >= 16 else np.ones(8)
    return float(phases.max() / max(1e-6, np.median(phases)))


def features(img: np.ndarray, face_box: Sequence[int], size: int) -> dict[str, float]:
    view = _model_view(img, size)
    inner = _inner(view, face_box, img.shape)
    grey = cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY)
    lab = cv2.cvtColor(inner, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
    hsv = cv2.cvtColor(inner, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.float32)
    # surroundings: everything outside the face box, at the model's view (the region probe's "outside")
    h, w = img.shape[:2]
    sy, sx = size / h, size / w
    lap = cv2.Laplacian(cv2.cvtColor(view, cv2.COLOR_BGR2GRAY), cv2.CV_64F)
    outside = np.ones(lap.shape, bool)
    x0, y0, x1, y1 = face_box
    outside[max(0, int(y0 * sy)):int(np.ceil(y1 * sy)), max(0, int(x0 * sx)):int(np.ceil(x1 * sx))] = False
    face_sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    context_sharp = float(lap[outside].var()) if outside.sum() > 16 else float("nan")
    return {"sharpness_lapvar": face_sharp,
            "context_sharpness_lapvar": context_sharp,
            "context_over_face_sharpness": context_sharp / max(face_sharp, 1e-6),
            "hf_fraction": hf_fraction(grey),
            "blockiness_native": blockiness(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)),
            "saturation": float(hsv[:, 1].mean()),
            "lab_a": float(lab[:, 1].mean()), "lab_b": float(lab[:, 2].mean())}


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return round(float(np.corrcoef(ra, rb)[0, 1]), 3)


# ------------------------------------------------------------------------------------------------ samples
def make_swaps(records: Sequence[Any], load: Callable[[Any], np.ndarray], blends: Sequence[str],
               seed: int = 0) -> list[dict[str, Any]]:
    """One swap per (target crop, blend), donor drawn from the other people; with donor/target provenance."""
    from fakewatch.training.swaps import face_swap

    people = sorted({r.video_id for r in records})
    by_person = {p: [i for i, r in enumerate(records) if r.video_id == p] for p in people}
    out = []
    for t, rec in enumerate(records):
        rng = np.random.default_rng([seed, t])
        others = [p for p in people if p != rec.video_id]
        for blend in blends:
            dp = others[int(rng.integers(len(others)))]
            d = by_person[dp][int(rng.integers(len(by_person[dp])))]
            donor = records[d]
            img = face_swap(load(donor), donor.face_box, load(rec), rec.face_box, rng, blend)
            out.append({"image": img, "blend": blend, "target": t, "donor": d})
    return out


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from fakewatch.core.metrics import roc_auc
    return round(float(roc_auc(y, s)), 4) if 0 < y.sum() < len(y) else None


def analyse(model: Path, records: Sequence[Any], reals: list[np.ndarray], swaps: list[dict[str, Any]],
            dominant: str) -> dict[str, Any]:
    from fakewatch.training.honest_eval import load_spec_of, person_balanced_auc, score_images

    spec = load_spec_of(model)
    thr = float(spec.threshold)
    size = int(spec.input_size[0])   # square inputs (fakewatch models); features use one side
    people = np.array([r.video_id for r in records])
    pert_imgs = {k: [f(np.ascontiguousarray(im)) for im in reals] for k, f in PERTURBATIONS.items()}
    pert_imgs |= {k: [f(np.ascontiguousarray(im), r.face_box) for im, r in zip(reals, records)]
                  for k, f in BOX_PERTURBATIONS.items()}
    batch = reals + [s["image"] for s in swaps] + [im for k in pert_imgs for im in pert_imgs[k]]
    scores, _ = score_images(model, batch, progress=False)
    n, m = len(reals), len(swaps)
    real_s, swap_s = scores[:n], scores[n:n + m]
    pert_s = {k: scores[n + m + i * n:n + m + (i + 1) * n] for i, k in enumerate(pert_imgs)}
    person_mean = {p: float(real_s[people == p].mean()) for p in np.unique(people)}

    # 1. composition or cue
    blends = sorted({s["blend"] for s in swaps})
    comp: dict[str, Any] = {}
    for blend in blends + ["all"]:
        idx = [i for i, s in enumerate(swaps) if blend in ("all", s["blend"])]
        tgt = np.array([swaps[i]["target"] for i in idx])
        ss = swap_s[idx]
        y = np.r_[np.zeros(n), np.ones(len(idx))]
        keep_r, keep_s = people != dominant, people[tgt] != dominant
        within = []
        for p in np.unique(people):
            rp, sp = real_s[people == p], ss[people[tgt] == p]
            if len(rp) and len(sp):
                within.append(_auc(np.r_[np.zeros(len(rp)), np.ones(len(sp))], np.r_[rp, sp]))
        comp[blend] = {
            "n": len(idx), "auc_pooled": _auc(y, np.r_[real_s, ss]),
            "auc_person_balanced": round(person_balanced_auc(y, np.r_[real_s, ss], np.r_[people, people[tgt]]), 4),
            f"auc_without_{dominant}": _auc(np.r_[np.zeros(keep_r.sum()), np.ones(keep_s.sum())],
                                           np.r_[real_s[keep_r], ss[keep_s]]),
            f"auc_only_{dominant}_targets_vs_other_reals": _auc(
                np.r_[np.zeros(keep_r.sum()), np.ones((~keep_s).sum())], np.r_[real_s[keep_r], ss[~keep_s]]),
            "auc_within_person_mean": round(float(np.mean([w for w in within if w is not None])), 4)
            if any(w is not None for w in within) else None,
            "share_below_own_target": round(float(np.mean(ss < real_s[tgt])), 4),
            "mean_score_change_vs_target": round(float(np.mean(ss - real_s[tgt])), 4)}

    # 2. what differs: features of swap vs its target, and the donor's own look
    feats_real = [features(im, r.face_box, size) for im, r in zip(reals, records)]
    feats_swap = [features(s["image"], records[s["target"]].face_box, size) for s in swaps]
    dscore = swap_s - real_s[[s["target"] for s in swaps]]
    cues: dict[str, Any] = {}
    for k in feats_real[0]:
        dfeat = [fs[k] - feats_real[s["target"]][k] for fs, s in zip(feats_swap, swaps)]
        cues[k] = {"real_mean": round(float(np.mean([f[k] for f in feats_real])), 4),
                   "swap_mean": round(float(np.mean([f[k] for f in feats_swap])), 4),
                   "mean_change_swap_minus_target": round(float(np.mean(dfeat)), 4),
                   "spearman_dfeature_dscore": spearman(dfeat, dscore),
                   "spearman_feature_score_reals": spearman([f[k] for f in feats_real], real_s)}
    native_w = np.array([r.face_box[2] - r.face_box[0] for r in records], np.float64)
    donor_w = native_w[[s["donor"] for s in swaps]]
    target_w = native_w[[s["target"] for s in swaps]]
    donor_real = real_s[[s["donor"] for s in swaps]]
    donor_cues = {
        "spearman_swap_score_vs_donor_real_score": spearman(swap_s, donor_real),
        "spearman_swap_score_vs_target_real_score": spearman(swap_s, real_s[[s["target"] for s in swaps]]),
        "spearman_dscore_vs_log_donor_over_target_face_px": spearman(np.log(donor_w / target_w), dscore),
        "spearman_real_score_vs_native_face_px": spearman(native_w, real_s),
        "real_features_per_person": {
            p: {k: round(float(np.mean([f[k] for f, q in zip(feats_real, people) if q == p])), 4)
                for k in feats_real[0]} for p in np.unique(people)},
        "native_face_px_per_person": {p: round(float(native_w[people == p].mean()), 1) for p in np.unique(people)}}

    # 3. perturbed reals
    pert: dict[str, Any] = {}
    for k, ps in pert_s.items():
        d = ps - real_s
        per_person = {p: round(float(np.mean(ps[people == p] >= thr)), 3) for p in np.unique(people)}
        pert[k] = {"mean_score_change": round(float(d.mean()), 4),
                   "share_toward_fake": round(float(np.mean(d > 0)), 4),
                   "fpr_at_threshold": round(float(np.mean(ps >= thr)), 4),
                   "fpr_mean_over_people": round(float(np.mean(list(per_person.values()))), 4),
                   "fpr_per_person": per_person,
                   f"mean_score_change_{dominant}": round(float(d[people == dominant].mean()), 4)
                   if (people == dominant).any() else None,
                   "mean_score_change_others": round(float(d[people != dominant].mean()), 4)}
    return {"model": str(model), "threshold": thr, "input_size": size,
            "real": {"n": n, "fpr_at_threshold": round(float(np.mean(real_s >= thr)), 4),
                     "mean_score_per_person": {p: round(v, 4) for p, v in person_mean.items()},
                     "fpr_per_person": {p: round(float(np.mean(real_s[people == p] >= thr)), 3)
                                        for p in np.unique(people)}},
            "swap_composition": comp, "swap_vs_target_features": cues, "donor_and_size": donor_cues,
            "perturbed_reals": pert}


def _markdown(doc: dict[str, Any], dominant: str) -> str:
    lines = ["# swap_diagnosis", "", f"Command: `{doc['command']}`", "",
             f"uptime before: `{doc['uptime_before']}`; after: `{doc['uptime_after']}`", ""]
    for name, r in doc["models"].items():
        lines += [f"## {name} (`{r['model']}`, threshold {r['threshold']:g})", "",
                  f"Clean reals: FPR {r['real']['fpr_at_threshold']:.2f}; mean P(fake) per person: " +
                  ", ".join(f"{p} {v:.2f}" for p, v in r["real"]["mean_score_per_person"].items()), "",
                  f"| swaps | n | AUC pooled | AUC, people weighted equally | AUC without {dominant} | "
                  f"{dominant}-target swaps vs other reals | AUC within person (mean) | below own target | "
                  f"mean ΔP vs target |", "|---|---|---|---|---|---|---|---|---|"]
        for b, c in r["swap_composition"].items():
            lines.append(f"| {b} | {c['n']} | {c['auc_pooled']} | {c['auc_person_balanced']} | "
                         f"{c[f'auc_without_{dominant}']} | "
                         f"{c[f'auc_only_{dominant}_targets_vs_other_reals']} | {c['auc_within_person_mean']} | "
                         f"{c['share_below_own_target']} | {c['mean_score_change_vs_target']} |")
        lines += ["", "| feature (inner face, model view) | reals mean | swaps mean | Δ swap−target | "
                  "ρ(Δfeature, ΔP) | ρ(feature, P) over reals |", "|---|---|---|---|---|---|"]
        for k, c in r["swap_vs_target_features"].items():
            lines.append(f"| {k} | {c['real_mean']} | {c['swap_mean']} | {c['mean_change_swap_minus_target']} | "
                         f"{c['spearman_dfeature_dscore']} | {c['spearman_feature_score_reals']} |")
        dc = r["donor_and_size"]
        lines += ["", f"ρ(swap P, donor's real P) = {dc['spearman_swap_score_vs_donor_real_score']}; "
                  f"ρ(swap P, target's real P) = {dc['spearman_swap_score_vs_target_real_score']}; "
                  f"ρ(ΔP, log donor/target face px) = {dc['spearman_dscore_vs_log_donor_over_target_face_px']}; "
                  f"ρ(real P, native face px) = {dc['spearman_real_score_vs_native_face_px']}", "",
                  "| reals after | mean ΔP(fake) | share toward FAKE | FPR | mean FPR over people | "
                  f"ΔP {dominant} | ΔP others |", "|---|---|---|---|---|---|---|"]
        lines.append(f"| (clean) | 0 | – | {r['real']['fpr_at_threshold']} | "
                     f"{np.mean(list(r['real']['fpr_per_person'].values())):.4f} | 0 | 0 |")
        for k, c in r["perturbed_reals"].items():
            lines.append(f"| {k} | {c['mean_score_change']} | {c['share_toward_fake']} | {c['fpr_at_threshold']} | "
                         f"{c['fpr_mean_over_people']} | {c[f'mean_score_change_{dominant}']} | "
                         f"{c['mean_score_change_others']} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=PATH or PATH of fakewatch .onnx/.pt models (same contract)")
    ap.add_argument("--people", type=Path, required=True, help="manifest path,label,video_id of unseen people")
    ap.add_argument("--out", type=Path, required=True,
                    help="JSON result file (a .md with the tables and a .png beside it)")
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/swap_diagnosis_crops"), help="crop cache")
    ap.add_argument("--frames-per-video", type=int, default=16, help="as fakewatch eval (default 16)")
    ap.add_argument("--dominant", default="carphone_man", help="the person whose crops dominate the set")
    ap.add_argument("--blends", nargs="+", default=["poisson", "laplacian", "colour_transfer"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    named = [(m.split("=", 1) if "=" in m else (Path(m).parent.name or m, m)) for m in args.models]
    for name, path in named:
        if not Path(path).is_file():
            raise SystemExit(f"swap_diagnosis: model {name}={path} does not exist (a .onnx from `fakewatch export` "
                             f"or a .pt from `fakewatch train`)")
    if not args.people.is_file():
        raise SystemExit(f"swap_diagnosis: --people {args.people} does not exist (a manifest path,label,video_id; "
                         f"training/results/demo_model/fit_diagnosis/test_people.csv is one)")
    import torch
    torch.set_num_threads(args.threads)
    from fakewatch.training.data import build_crops, discover, load_crop
    from fakewatch.training.honest_eval import load_spec_of

    up0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    t0 = time.monotonic()
    specs = {name: load_spec_of(path) for name, path in named}
    first = specs[named[0][0]]
    for name, s in specs.items():   # one set of crops for all: the models must cut them the same way
        if (s.roi, s.roi_margin) != (first.roi, first.roi_margin):
            raise SystemExit(f"swap_diagnosis: {name} crops faces differently ({s.roi}, margin {s.roi_margin}) "
                             f"from {named[0][0]} ({first.roi}, {first.roi_margin}); run them separately")
    items = [it for it in discover(args.people, require_fake=False) if it.label == 0]
    records, _ = build_crops(items, first, args.cache_dir, args.frames_per_video, progress=False)
    reals = [load_crop(r) for r in records]
    swaps = make_swaps(records, load_crop, args.blends)
    doc: dict[str, Any] = {
        "command": "python -m fakewatch.training.swap_diagnosis " + " ".join(sys.argv[1:] if argv is None else argv),
        "people": sorted({r.video_id for r in records}), "real_crops": len(records),
        "crops_per_person": {p: sum(r.video_id == p for r in records) for p in sorted({r.video_id for r in records})},
        "perturbations": [*PERTURBATIONS, *BOX_PERTURBATIONS], "models": {}}
    for name, path in named:
        doc["models"][name] = analyse(Path(path), records, reals, swaps, args.dominant)
        print(f"{name}: done", flush=True)
    doc["seconds"] = round(time.monotonic() - t0, 1)
    doc["uptime_before"] = up0
    doc["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(_markdown(doc, args.dominant))
    from fakewatch.training.swap_diagnosis_plot import plot
    plot(doc, args.out.with_suffix(".png"), args.dominant)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
