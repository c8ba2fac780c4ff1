"""``fakewatch export triton MODEL [MODEL...] -o REPO``: the subcommand (logic in export/triton_repo.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub2: argparse._SubParsersAction) -> None:
    t = sub2.add_parser(
        "triton", help="artifacts -> Triton Inference Server model repository (config.pbtxt + 1/model.*)",
        description="Write a standard Triton model repository: REPO/<name>/config.pbtxt and REPO/<name>/1/model.onnx "
                    "(onnxruntime_onnx or openvino) or model.plan (tensorrt_plan, built on the serving GPU). The "
                    "fakewatch contract goes into the config's parameters, so `fakewatch watch --backend triton` "
                    "needs no local model. The config is parsed with Triton's own protobuf before it is written.")
    t.add_argument("models", nargs="+", type=Path, metavar="MODEL", help=".onnx (+ contract) or TensorRT plan + sidecar")
    t.add_argument("-o", "--output", type=Path, required=True, metavar="REPO", help="model repository folder")
    t.add_argument("--name", action="append", default=None,
                   help="model name on the server (once per MODEL; default: the file name without suffixes)")
    t.add_argument("--platform", choices=("onnxruntime", "openvino", "tensorrt"), default=None,
                   help="Triton backend (default: onnxruntime for .onnx, tensorrt for plans)")
    t.add_argument("--max-batch", type=int, default=16, help="max_batch_size (a plan's profile caps it)")
    t.add_argument("--preferred-batch", type=int, nargs="+", default=None,
                   help="dynamic_batching preferred sizes (default: max/2 and max)")
    t.add_argument("--max-queue-delay-us", type=int, default=2000,
                   help="dynamic_batching max_queue_delay_microseconds (default 2000)")
    t.add_argument("--instances", type=int, default=1, help="instance_group count per GPU/CPU")
    t.add_argument("--kind", choices=("KIND_GPU", "KIND_CPU", "KIND_AUTO"), default="KIND_GPU",
                   help="instance_group kind (default KIND_GPU)")
    t.add_argument("--with-detector", nargs="?", const="blazeface", default=None, metavar="DETECTOR",
                   help="also export a face detector (blazeface, blazeface-short or a BlazeFace model file; default "
                        "blazeface) with its decoding in the config, so edge nodes can detect on the server too "
                        "(`fakewatch watch --face-detector grpc://HOST:8001/NAME`)")
    t.add_argument("--detector-name", default="face_detector", help="model name of --with-detector on the server")
    t.add_argument("--overwrite", action="store_true", help="replace models already in REPO")
    t.add_argument("--debug", action="store_true", help="show tracebacks")
    t.set_defaults(func=_run_triton)


def _run_triton(args: argparse.Namespace) -> int:
    from fakewatch.export.triton_repo import TritonExportOptions, detector_artifact, docker_command, export_model

    names = args.name or [None] * len(args.models)
    if len(names) != len(args.models):
        raise ValueError(f"--name given {len(names)} time(s) for {len(args.models)} model(s); give one per MODEL "
                         f"or none")
    if len({n for n in names if n}) != len([n for n in names if n]):
        raise ValueError(f"--name values must differ, got {names}")
    opts = TritonExportOptions(max_batch=args.max_batch, preferred_batch=tuple(args.preferred_batch or ()),
                               max_queue_delay_us=args.max_queue_delay_us, instances=args.instances, kind=args.kind,
                               platform=args.platform)
    models = list(zip(args.models, names))
    if args.with_detector is not None:
        if args.detector_name in names:
            raise ValueError(f"--detector-name {args.detector_name!r} is also a --name; pick another")
        models.append((detector_artifact(args.with_detector), args.detector_name))
    done = []
    for model, name in models:
        m = export_model(model, args.output, name=name, opts=opts, overwrite=args.overwrite)
        check = "parsed by Triton's ModelConfig protobuf" if m.validated else \
            "NOT validated (pip install 'fakewatch[triton]' for tritonclient)"
        print(f"{m.name:<20} {m.platform:<12} max_batch {m.max_batch:<3} {m.model_file}  [{check}]")
        done.append(m)
    if any(m.platform == "tensorrt" for m in done):
        print("note: a TensorRT plan loads only on the GPU model and TensorRT version it was built with; run the "
              "container whose TensorRT matches the sidecar", file=sys.stderr)
    print(f"\nserve it:\n  {docker_command(args.output)}\nclients:\n  fakewatch watch SOURCE... --backend triton "
          f"--triton-url grpc://HOST:8001 --triton-model {done[0].name}"
          + (f" --face-detector grpc://HOST:8001/{args.detector_name}" if args.with_detector is not None else ""))
    return 0
