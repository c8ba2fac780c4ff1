"""``fakewatch export``: list variants, export checkpoints to verified ONNX."""
from __future__ import annotations

import argparse
from pathlib import Path

#  fakewatch.export.quantize.RECIPES' keys, spelled out so `fakewatch --help` does not import the quantizer (a test
# checks)
QUANT_TARGETS = ("cpu", "openvino", "tensorrt")
# fakewatch.core.published.RECIPES' keys, spelled out for the same reason
PUBLISHED_RECIPES = ("dfdc-selimsef", "sbi", "deepfakebench-effb4")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="list variants; checkpoint -> verified ONNX; INT8 quantize; FP16",
                       description="Export models. `fakewatch export --list` shows every supported variant.")
    p.add_argument("--list", action="store_true", help="print the variant table and exit")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_run_list, _export_parser=p)
    sub2 = p.add_subparsers(dest="export_command", metavar="FORMAT")

    o = sub2.add_parser("onnx", help="checkpoint (or variant name) -> verified ONNX + contract sidecar")
    o.add_argument("model", nargs="+",
                   help="a checkpoint (.pt/.pth: fakewatch, timm or EfficientNet-PyTorch layout, or a published "
                        "detector's own file, see --from) or a variant name (random weights unless "
                        "--pretrained-file); several checkpoints of one published recipe export as one ensemble")
    o.add_argument("--from", dest="published", choices=PUBLISHED_RECIPES,
                   help="read MODEL as this published detector's checkpoint (default: detected from its keys): "
                        "dfdc-selimsef (DFDC winner, B7 @380), sbi (Self-Blended Images B4 @380), "
                        "deepfakebench-effb4 (DeepfakeBench B4 @256); see docs/published-detectors.md")
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
    _register_quantize(sub2)
    _register_fp16(sub2)
    from fakewatch.export.triton_cli import register as register_triton   # light: argparse only

    register_triton(sub2)


def _register_quantize(sub2: argparse._SubParsersAction) -> None:
    q = sub2.add_parser(
        "quantize", help="FP32 ONNX -> INT8 ONNX (cpu or tensorrt recipe) with real calibration + fidelity report",
        description="Quantize an FP32 fakewatch ONNX model to INT8 with onnxruntime static quantization. "
                    "Calibration frames go through the runtime's ROI + preprocessing. Prints a fidelity report "
                    "(held-out frames vs FP32) and writes it to OUT.fidelity.json.")
    q.add_argument("model", type=Path, help="FP32 .onnx exported by `fakewatch export onnx`")
    q.add_argument("--target", choices=QUANT_TARGETS, required=True,
                   help="cpu: QDQ uint8 asymmetric activations, tuned for ONNX Runtime; openvino: uint8 Q/DQ at "
                        "Conv/Gemm inputs only, tuned for OpenVINO (the fastest CPU INT8 here); tensorrt: symmetric "
                        "int8 Q/DQ as TensorRT 10+ explicit quantization expects")
    q.add_argument("--calib", nargs="+", required=True, metavar="SOURCE",
                   help="videos, image files/folders, camera index, rtsp:// / http:// URLs or 'demo'")
    q.add_argument("--calib-frames", type=int, default=128, help="calibration samples (default 128)")
    q.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax")
    hold = q.add_mutually_exclusive_group()
    hold.add_argument("--holdout", nargs="+", metavar="SOURCE", help="separate held-out sources for the report")
    hold.add_argument("--holdout-frames", type=int, default=64,
                      help="held-out samples split off the --calib sources (default 64, never calibrated on)")
    q.add_argument("--max-flip-rate", type=float, default=None,
                   help="fail (exit 1, remove the INT8 file) when more held-out decisions flip than this fraction")
    q.add_argument("-o", "--output", type=Path,
                   help="output .onnx (default MODEL.int8.onnx for cpu, MODEL.int8-ov.onnx for openvino, "
                        "MODEL.int8-trt.onnx for tensorrt)")
    q.add_argument("--debug", action="store_true", help="show tracebacks")
    q.set_defaults(func=_run_quantize)


def _register_fp16(sub2: argparse._SubParsersAction) -> None:
    f = sub2.add_parser("fp16", help="FP32 ONNX -> FP16 ONNX (float32 inputs/outputs kept) + fidelity report",
                        description="Convert weights and compute to float16, keeping the contract's float32 "
                                    "input/output types. Checks fidelity vs FP32 on held-out frames when given.")
    f.add_argument("model", type=Path, help="FP32 .onnx exported by `fakewatch export onnx`")
    f.add_argument("-o", "--output", type=Path, help="output .onnx (default MODEL.fp16.onnx)")
    f.add_argument("--holdout", nargs="+", metavar="SOURCE",
                   help="frames for the fidelity report (videos, image folders, live sources)")
    f.add_argument("--holdout-frames", type=int, default=64)
    f.add_argument("--max-flip-rate", type=float, default=None, help="gate, as for `quantize` (needs --holdout)")
    f.add_argument("--debug", action="store_true", help="show tracebacks")
    f.set_defaults(func=_run_fp16)


def _run_list(args: argparse.Namespace) -> int:
    from fakewatch.core.variants import format_table

    if args.list:
        print(format_table())
        return 0
    args._export_parser.print_help()
    return 2


def _run_onnx(args: argparse.Namespace) -> int:
    from fakewatch.core.checkpoint import build_model, default_spec, load_checkpoint
    from fakewatch.core.variants import resolve_variant
    from fakewatch.export.onnx_export import export_onnx

    if args.published or len(args.model) > 1:
        return _run_published(args)
    src = Path(args.model[0])
    notes: list[str] = []
    if src.suffix in (".pt", ".pth", ".bin", ".ckpt", ".tar") or src.exists():
        model, spec, notes = load_checkpoint(src, args.variant, num_outputs=args.num_outputs, exportable=True,
                                             roi=args.roi)
        default_out = src.with_suffix(".onnx")
    else:
        variant = resolve_variant(args.variant or args.model[0])
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


def _run_published(args: argparse.Namespace) -> int:
    from fakewatch.core.published import load_published
    from fakewatch.export.onnx_export import export_onnx

    model, spec, notes = load_published(args.model, args.published, args.variant)
    first = Path(args.model[0])
    default_out = first.with_name(f"{spec.provenance['published']}-{len(args.model)}x.onnx" if len(args.model) > 1
                                  else first.name.split(".")[0] + ".onnx")
    report = export_onnx(model, spec, args.output or default_out, opset=args.opset, simplify=not args.no_simplify,
                         tolerance=args.tolerance, notes=notes)
    print(report.summary())
    return 0


def _run_quantize(args: argparse.Namespace) -> int:
    from fakewatch.export.quantize import quantize_onnx

    result = quantize_onnx(args.model, args.output, args.target, args.calib, args.method,
                           calib_frames=args.calib_frames,
                           holdout_inputs=args.holdout, holdout_frames=args.holdout_frames,
                           max_flip_rate=args.max_flip_rate)
    print(result.summary())
    return 0


def _run_fp16(args: argparse.Namespace) -> int:
    from fakewatch.export.fp16 import convert_fp16

    if args.max_flip_rate is not None and not args.holdout:
        raise ValueError("--max-flip-rate needs --holdout frames to measure the flip rate on")
    result = convert_fp16(args.model, args.output, holdout_inputs=args.holdout, holdout_frames=args.holdout_frames,
                          max_flip_rate=args.max_flip_rate)
    print(result.summary())
    return 0
