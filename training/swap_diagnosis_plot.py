"""The swap diagnosis as a picture: ``python -m fakewatch.training.swap_diagnosis_plot RESULT.json [--out PNG]``.

Left: swap AUC per model, crop-weighted (as ``fakewatch eval`` reports it), every person weighted equally, and
within each person. Right: how much the dominant person's (the demo man's) P(fake) moves when only his face, only
his surroundings, or the whole crop is softened. ``swap_diagnosis`` writes it next to its JSON; this re-renders it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REGION_PROBES = (("blur_inside_face_s1.5", "blur only the face box"),
                 ("blur_outside_face_s1.5", "blur all but the face box"),
                 ("h264_crf32", "H.264 CRF 32, whole crop"))
AUC_KINDS = (("auc_pooled", "pooled over crops (fakewatch eval)"),
             ("auc_person_balanced", "every person weighted equally"),
             ("auc_within_person_mean", "within each person (mean)"))


def plot(doc: dict[str, Any], path: str | Path, dominant: str = "carphone_man") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(doc["models"])
    x = np.arange(len(models))
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.4))
    width = 0.8 / len(AUC_KINDS)
    for i, (key, label) in enumerate(AUC_KINDS):
        vals = [doc["models"][m]["swap_composition"]["all"].get(key) for m in models]
        a.bar(x + (i - 1) * width, [np.nan if v is None else v for v in vals], width, label=label)
    a.axhline(0.5, color="k", ls=":", lw=0.8)
    a.set_xticks(x, models)
    a.set_ylim(0, 1)
    a.set_xlabel("model (attempt)")
    a.set_ylabel("AUC, face swaps vs real crops")
    a.set_title("swaps between unseen people, all blends")
    a.legend(fontsize=8, loc="upper left")
    width = 0.8 / len(REGION_PROBES)
    key = f"mean_score_change_{dominant}"
    for i, (probe, label) in enumerate(REGION_PROBES):
        vals = [doc["models"][m]["perturbed_reals"].get(probe, {}).get(key) for m in models]
        b.bar(x + (i - 1) * width, [np.nan if v is None else v for v in vals], width, label=label)
    b.axhline(0.0, color="k", lw=0.8)
    b.set_xticks(x, models)
    b.set_xlabel("model (attempt)")
    b.set_ylabel(f"mean change of P(fake) on {dominant}'s real crops")
    b.set_title(f"what flags {dominant}: face or surroundings?")
    b.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"swap_diagnosis on {len(doc.get('people', []))} unseen people ({doc.get('real_crops', '?')} real "
                 f"crops)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", type=Path, help="JSON written by python -m fakewatch.training.swap_diagnosis")
    ap.add_argument("--out", type=Path, help="PNG (default: the JSON's name with .png)")
    ap.add_argument("--dominant", default="carphone_man")
    args = ap.parse_args(argv)
    if not args.result.is_file():
        raise SystemExit(f"swap_diagnosis_plot: {args.result} does not exist (run python -m "
                         f"fakewatch.training.swap_diagnosis ... --out {args.result} first)")
    out = args.out or args.result.with_suffix(".png")
    plot(json.loads(args.result.read_text()), out, args.dominant)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
