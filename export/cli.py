"""``fakewatch export``: list variants, export checkpoints to verified ONNX."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export models: list variants, checkpoint -> verified ONNX",
                       description="Export models. `fakewatch export --list` shows every supported variant.")
    p.add_argument("--list", action="store_true", help="print the variant table and exit")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_run_list, _export_parser=p)
    sub2 = p.add_subparsers(dest="export_command", metavar="FORMAT")

    o = sub2.add_parser("onnx", help="checkpoint (or variant name) -> verified ONNX + contract sidecar")
    o.add_argument("model", help="a checkpoint (.pt/.pth: fakewatch, timm or EfficientNet-PyTorch layout) "
                                 "or a variant name (random weights unless --pretrained-file)")
    o.add_argument("-o", "--output", type=Path, help="output .onnx (default: <name>.onnx next to the input "
                                                     "or ./<variant>.onnx)")
    o.add_argument("--variant", help="variant of a plain state dict / --pretrained-file (e.g. b0, tf-b4, lite0)")
    o.add_argument("--pretrained-file", type=Path, help="ImageNet weights (timm or EfficientNet-PyTorch layout) "
                                                        "for a variant-name export")
    o.add_argument("--num-outputs", type=int, default=None,
                   help="head size: 1 (fake logit, default) or e.g. 1000 to keep an ImageNet head")
    o.add_argument("--roi", choices=("face", "full"), default="face", help="ROI recorded in a new contract")
    o.add_argument("--opset", type=int, default=17)
    o.add_argument("--tolerance", type=float, default=1e-4, help="max abs ORT-vs-torch difference allowed")
    o.add_argument("--no-simplify", action="store_true", help="skip onnxsim graph simplification")
    o.add_argument("--debug", action="store_true", help="show tracebacks")
    o.set_defaults(func=_run_onnx)


def _run_list(args: argparse.Namespace) -> int:
    from .variants import format_table

    if args.list:
        print(format_table())
        return 0
    args._export_parser.print_help()
    return 2


def _run_onnx(args: argparse.Namespace) -> int:
    from .checkpoint import build_model, default_spec, load_checkpoint
    from .onnx_export import export_onnx
    from .variants import resolve_variant

    src = Path(args.model)
    notes: list[str] = []
    if src.suffix in (".pt", ".pth", ".bin", ".ckpt") or src.exists():
        model, spec, notes = load_checkpoint(src, args.variant, num_outputs=args.num_outputs, exportable=True,
                                             roi=args.roi)
        default_out = src.with_suffix(".onnx")
    else:
        variant = resolve_variant(args.variant or args.model)
        if args.pretrained_file:
            model, spec, notes = load_checkpoint(args.pretrained_file, variant.name,
                                                 num_outputs=args.num_outputs or 1, exportable=True, roi=args.roi)
        else:
            spec = default_spec(variant, num_outputs=args.num_outputs or 1, roi=args.roi,
                                provenance={"weights": "random (untrained)"})
            model = build_model(spec, exportable=True)
            notes.append("random weights: fine for timing and plumbing, meaningless scores")
        default_out = Path(f"{variant.name}.onnx")
    report = export_onnx(model, spec, args.output or default_out, opset=args.opset,
                         simplify=not args.no_simplify, tolerance=args.tolerance, notes=notes)
    print(report.summary())
    return 0
