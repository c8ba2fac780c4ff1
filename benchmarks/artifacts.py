"""Model artifacts a benchmark row needs, built once and cached: fp32 ONNX, torch checkpoint, INT8/FP16 ONNX.

Weights are random (seeded) - timing does not depend on their values. Every artifact is produced by the project's
own tools (``fakewatch.core.checkpoint.build_model`` + ``fakewatch.export.onnx_export.export_onnx``,
``fakewatch.export.quantize``), so the benchmark measures exactly what users deploy. A precision whose tool is missing
is reported as a skipped row with the reason (:class:`Unavailable`), never substituted.

Cache layout: ``<workdir>/<variant>/{model.onnx, model.onnx.json, model.pt, model.int8.onnx, meta.json}``;
default workdir ``$FAKEWATCH_CACHE/bench`` or ``~/.cache/fakewatch/bench``.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

SEED = 0
# Calibration for timing-only INT8 artifacts: few frames, batch 1. ORT's calibrator holds every intermediate tensor
# of a batch in memory: B6 at 528 px with batch 8 needed > 23 GB (OOM-killed here); batch 1 keeps it to a few GB.
_CALIB = dict(calib_frames=16, holdout_frames=4, batch=1, progress=False)
META_VERSION = 1


class Unavailable(RuntimeError):
    """This row cannot be measured here (missing library / project piece); the message is the reason shown."""


def tools_fingerprint() -> str:
    """sha256 (16 hex) of the source that shapes artifacts: the export package (CLIs and TensorRT helpers excluded)
    and the core's model modules (contract, variants, checkpoint layouts, crops and preprocessing)."""
    import hashlib

    import fakewatch.core
    import fakewatch.export

    core = Path(fakewatch.core.__file__).parent
    paths = [p for p in Path(fakewatch.export.__file__).parent.glob("*.py")
             if not (p.name.endswith("cli.py") or p.name.startswith("engine"))]
    paths += [core / f"{name}.py" for name in ("contract", "variants", "checkpoint", "roi", "preprocess")]
    h = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def default_workdir() -> Path:
    root = os.environ.get("FAKEWATCH_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "fakewatch") / "bench"


class ArtifactCache:
    def __init__(self, workdir: str | Path | None = None) -> None:
        self.root = Path(workdir) if workdir else default_workdir()
        self.root.mkdir(parents=True, exist_ok=True)

    def dir(self, variant: str) -> Path:
        d = self.root / variant
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ------------------------------------------------------------------ fp32 ONNX + torch checkpoint
    def fp32(self, variant: str) -> Path:
        """Verified fp32 ONNX of ``variant`` (full-frame ROI contract); exports it (with its checkpoint) once.

        The cache is keyed on the export tools' source (:func:`tools_fingerprint`): when export/quantization code
        changes, every artifact of the variant is rebuilt, so results always describe what the tools make today.
        """
        d = self.dir(variant)
        onnx_path, pt_path, meta_path = d / "model.onnx", d / "model.pt", d / "meta.json"
        if onnx_path.is_file() and pt_path.is_file() and self._meta_ok(meta_path, variant):
            return onnx_path
        for stale in d.glob("model*"):  # derived artifacts (int8/fp16/engines) of older tools go too
            stale.unlink()
        self._export(variant, onnx_path, pt_path, meta_path)
        return onnx_path

    def torch_checkpoint(self, variant: str) -> Path:
        self.fp32(variant)
        return self.dir(variant) / "model.pt"

    def meta(self, variant: str) -> dict[str, Any]:
        self.fp32(variant)
        return json.loads((self.dir(variant) / "meta.json").read_text())

    def _meta_ok(self, path: Path, variant: str) -> bool:
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return (meta.get("meta_version") == META_VERSION and meta.get("variant") == variant
                and meta.get("tools_fingerprint") == tools_fingerprint())

    def _export(self, variant: str, onnx_path: Path, pt_path: Path, meta_path: Path) -> None:
        import torch

        from fakewatch.benchmarks.macs import count_macs
        from fakewatch.core.checkpoint import build_model, default_spec, save_checkpoint
        from fakewatch.core.contract import write_sidecar
        from fakewatch.export.onnx_export import export_onnx

        # roi="full": the benchmark measures the model and the pipeline, not the Haar face detector (docs).
        spec = default_spec(variant, roi="full", provenance={"weights": f"random (torch seed {SEED}), benchmark only"})
        torch.manual_seed(SEED)
        model = build_model(spec, exportable=True)
        report = export_onnx(model, spec, onnx_path)
        ckpt_spec = report.spec
        save_checkpoint(pt_path, model, ckpt_spec)
        write_sidecar(pt_path, ckpt_spec)  # load_spec()/load_runner() read a .pt's contract from its sidecar
        try:
            macs = count_macs(onnx_path, batch=1)
        except ValueError as exc:   # e.g. TF-SAME pads computed in-graph (tf-* variants): time the row anyway
            macs = {"total": None, "error": str(exc)}
        meta = {"meta_version": META_VERSION, "tools_fingerprint": tools_fingerprint(), "variant": variant,
                "timm_name": spec.timm_name,
                "input_size": list(spec.input_size), "params": report.params, "macs": macs["total"],
                "macs_by_op": macs, "export_max_abs_diff": report.max_abs_diff,
                "export_seconds": round(report.seconds, 1)}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    # ------------------------------------------------------------------ other precisions
    def int8(self, variant: str, target: str = "cpu") -> Path:
        """INT8 ONNX made with the project's recipe for ``target`` (``fakewatch.export.quantize.quantize_onnx``):
        ``cpu`` for
        ONNX Runtime, ``openvino`` for OpenVINO, ``tensorrt`` (symmetric Q/DQ) the only INT8 input TensorRT >= 10
        builds from. Named ``model<recipe suffix>`` (model.int8.onnx, model.int8-ov.onnx, model.int8-trt.onnx).

        Calibrated on frames of the generated benchmark video (timing does not depend on calibration quality; the
        quantization docs measure fidelity on real footage).
        """
        if importlib.util.find_spec("fakewatch.export.quantize") is None:
            raise Unavailable("int8: fakewatch.export.quantize not available yet")
        from fakewatch.export.quantize import quantize_onnx, recipe_for

        out = self.dir(variant) / f"model{recipe_for(target).suffix}"
        if out.is_file():
            return out
        from fakewatch.benchmarks.media import synthetic_video

        video = synthetic_video(self.root / "media", frames=48)
        quantize_onnx(self.fp32(variant), out, target, [str(video)], "minmax", **_CALIB)
        if not out.is_file():
            raise RuntimeError(f"int8: fakewatch.export.quantize did not write {out}")
        return out

    def fp16(self, variant: str) -> Path:
        """FP16 ONNX (fp16 weights/compute, fp32 I/O) made by ``fakewatch.export.fp16.convert_fp16``."""
        out = self.dir(variant) / "model.fp16.onnx"
        if out.is_file():
            return out
        if importlib.util.find_spec("fakewatch.export.fp16") is None:
            raise Unavailable("fp16: fakewatch.export.fp16 not available yet")
        if importlib.util.find_spec("onnxconverter_common") is None:
            raise Unavailable("fp16: onnxconverter-common not installed (pip install 'fakewatch[export]')")
        from fakewatch.export.fp16 import convert_fp16

        convert_fp16(self.fp32(variant), out, progress=False)
        return out

    def tensorrt_engine(self, variant: str, precision: str, batch: int) -> Path:
        """A TensorRT plan built by ``fakewatch.export.engine_build.build_engine``, profile 1:batch:batch (tuned for
        ``batch``).

        Built on the machine that runs it (engines are GPU- and version-specific); cached per precision and
        batch. Source ONNX per precision: fp32 -> fp32 ONNX, fp16 -> the fp16 ONNX (TensorRT 11 takes precision
        from the graph; 10 also gets the FP16 flag), int8 -> the tensorrt-recipe Q/DQ ONNX.
        """
        if importlib.util.find_spec("fakewatch.export.engine_build") is None:
            raise Unavailable("tensorrt: fakewatch.export.engine_build not available yet")
        from fakewatch.core.tensorrt import plan_intact
        from fakewatch.export.engine import BatchProfile, BuildOptions
        from fakewatch.export.engine_build import build_engine

        out = self.dir(variant) / f"model.{precision}.b{batch}.engine"
        if plan_intact(out):        # size + sha256 match the sidecar: a truncated or interrupted build is rebuilt
            return out
        sources = {"fp32": self.fp32, "fp16": self.fp16, "int8": lambda v: self.int8(v, "tensorrt")}
        source = sources[precision](variant)
        build_engine(source, out, BuildOptions(precision=precision, profile=BatchProfile(1, batch, batch),
                                               timing_cache=self.root / "tensorrt.timing-cache"))
        return out

    def artifact(self, variant: str, backend: str, precision: str, batch: int = 8) -> Path:
        """The file a (backend, precision) row loads. Raises :class:`Unavailable` with the skip reason."""
        if backend == "torch":
            if precision != "fp32":
                raise Unavailable(f"torch: {precision} eager rows are not measured (the {precision} deployment "
                                  f"path is ONNX Runtime / TensorRT)")
            return self.torch_checkpoint(variant)
        if backend == "tensorrt":
            return self.tensorrt_engine(variant, precision, batch)
        if backend == "openvino":
            if precision == "fp16":
                raise Unavailable("openvino: fp16 rows are not measured (OpenVINO on a CPU computes an FP16 model "
                                  "in f32 or bf16; its INT8 row is the fast path)")
            if precision == "int8":
                return self.int8(variant, "openvino")
        if precision == "fp32":
            return self.fp32(variant)
        if precision == "int8":
            return self.int8(variant)
        if precision == "fp16":
            return self.fp16(variant)
        raise Unavailable(f"unknown precision {precision!r}")
