"""Checkpoint -> verified ONNX (opset >= 17, dynamic batch, contract embedded, sidecar written).

Verification is not optional: ``onnx.checker`` plus ONNX Runtime vs torch on fresh random inputs; a max abs diff
above the tolerance aborts the export and removes the half-written file.

A protobuf message, hence one ONNX file, holds at most 2 GiB. Models whose weights come near that (large ensembles
such as 8 x B7 in fp32) are written with ONNX external data: ``model.onnx`` holds the graph and the contract,
``model.onnx.data`` next to it the weights (ONNX Runtime, OpenVINO and TensorRT's file parser read it from the
model's folder; keep the two files together).
"""
from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fakewatch.core.contract import ModelSpec, embed_in_onnx, write_sidecar
from fakewatch.export.graph_passes import reduce_mean_to_global_pool

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4
# weights above this go to external data: 2 GiB less headroom for the graph, the contract and protobuf framing
EXTERNAL_DATA_BYTES = 2 ** 31 - 128 * 2 ** 20


class ExportError(RuntimeError):
    """Export or its verification failed."""


@dataclass
class ExportReport:
    path: Path
    spec: ModelSpec
    params: int
    size_bytes: int
    max_abs_diff: float
    output_scale: float
    verify_batches: tuple[int, ...]
    seconds: float
    simplified: bool
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        h, w = self.spec.input_size
        lines = [
            f"exported   {self.path}",
            f"variant    {self.spec.variant} ({self.spec.timm_name}), {self.params / 1e6:.2f} M params",
            f"input      {self.spec.input_name} [N, 3, {h}, {w}] float32, {self.spec.channel_order}, "
            f"mean {tuple(round(m, 3) for m in self.spec.mean)} std {tuple(round(s, 3) for s in self.spec.std)}",
            f"output     {self.spec.output_name} [N, {self.spec.num_outputs}] ({self.spec.output})",
            f"size       {self.size_bytes / 1e6:.2f} MB on disk",
            f"verified   onnx.checker ok; max |onnxruntime - torch| = {self.max_abs_diff:.2e} "
            f"(outputs up to {self.output_scale:.2e}) over batches {list(self.verify_batches)}",
            f"simplified {'yes' if self.simplified else 'no'}",
            f"time       {self.seconds:.1f} s",
        ]
        lines += [f"note       {n}" for n in self.notes]
        return "\n".join(lines)


def _torch_to_onnx_bytes(model, spec: ModelSpec, opset: int) -> bytes:
    import torch

    dummy = torch.randn(2, 3, *spec.input_size)
    buf = io.BytesIO()
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
    # The TorchScript exporter gives a plain, fully static-except-batch graph that TensorRT and ORT both like.
    torch.onnx.export(
        model, (dummy,), buf, dynamo=False, opset_version=opset,
        input_names=[spec.input_name], output_names=[spec.output_name],
        dynamic_axes={spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}},
        do_constant_folding=True,
    )
    return buf.getvalue()


def _torch_to_onnx_external(model, spec: ModelSpec, opset: int, workdir: Path):
    """The same export for a model over the protobuf limit: via a file, its weights loaded back into memory (a
    proto over 2 GiB lives fine in memory; only serialising it in one piece fails)."""
    import onnx
    import torch

    path = workdir / "raw.onnx"
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    torch.onnx.export(
        model, (torch.randn(2, 3, *spec.input_size),), str(path), dynamo=False, opset_version=opset,
        input_names=[spec.input_name], output_names=[spec.output_name],
        dynamic_axes={spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}},
        do_constant_folding=True,
    )
    return onnx.load(str(path), load_external_data=True)


def _save(proto, tmp: Path, final: Path, external: bool) -> None:
    import onnx

    if not external:
        onnx.save(proto, str(tmp))
        return
    data = final.with_name(final.name + ".data")   # named for the final file: the .partial rename keeps it valid
    data.unlink(missing_ok=True)                   # save appends to an existing data file
    onnx.save_model(proto, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)


def _simplify(proto):
    try:
        import onnxsim  # optional
    except ImportError:
        return proto, False
    simplified, ok = onnxsim.simplify(proto)
    return (simplified, True) if ok else (proto, False)


def verify_onnx(path: str | Path, model, spec: ModelSpec, *, batches: tuple[int, ...] = (1, 3),
                tolerance: float = DEFAULT_TOLERANCE, seed: int | None = None) -> tuple[float, float]:
    """(max abs difference ONNX Runtime vs torch, max abs torch output) on fresh random pixels, normalised.

    Raises above ``tolerance``. Large-logit models are held to ``tolerance`` relative to their output scale
    (fp32 rounding grows with magnitude); random-init models have tiny logits, so the absolute bound applies.
    """
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst, scale = 0.0, 0.0
    for n in batches:
        # pixels in [0, 1] through the contract's normalisation: the inputs the model will really see (a [0,1]
        # model such as SBI fed N(0,1) noise can leave its trained range, where fp32 rounding is not comparable)
        pixels = rng.uniform(0.0, 1.0, (n, 3, *spec.input_size))
        mean = np.asarray(spec.mean).reshape(1, 3, 1, 1)
        std = np.asarray(spec.std).reshape(1, 3, 1, 1)
        x = ((pixels - mean) / std).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run([spec.output_name], {spec.input_name: x})[0]
        if got.shape != ref.shape:
            raise ExportError(f"{path}: ONNX output shape {got.shape} != torch {ref.shape} at batch {n}")
        worst = max(worst, float(np.max(np.abs(got - ref))))
        scale = max(scale, float(np.max(np.abs(ref))))
    if not worst <= tolerance * max(1.0, scale):
        raise ExportError(f"{path}: ONNX Runtime output differs from torch by {worst:.3e} (max abs), above the "
                          f"tolerance {tolerance:.1e} (outputs up to {scale:.2e}); the export is not trustworthy and was removed")
    return worst, scale


def export_onnx(model, spec: ModelSpec, out: str | Path, *, opset: int = DEFAULT_OPSET, simplify: bool = True,
                tolerance: float = DEFAULT_TOLERANCE, verify_batches: tuple[int, ...] = (1, 3),
                notes: list[str] | None = None) -> ExportReport:
    """Export ``model`` (a timm model in eval mode) to ``out`` and verify it; see module docstring."""
    import onnx
    import torch

    if opset < 17:
        raise ExportError(f"opset {opset} requested; fakewatch exports opset >= 17 (LayerNorm/SiLU-friendly, "
                          f"what TensorRT 10 parses best)")
    t0 = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    external = weight_bytes > EXTERNAL_DATA_BYTES
    members = getattr(model, "ensemble_members", None)
    if members is not None:   # one member traced at a time, then joined (tracing 7 x B7 at once needs > 20 GB)
        from fakewatch.export.ensemble_onnx import ensemble_proto

        passes = {"simplified": [], "se_pools": []}

        def export_member(member):
            proto = onnx.load_from_string(_torch_to_onnx_bytes(member, spec, opset))
            ok = False
            if simplify:
                proto, ok = _simplify(proto)
            passes["simplified"].append(ok)
            passes["se_pools"].append(reduce_mean_to_global_pool(proto))
            return proto

        proto = ensemble_proto(list(members), export_member, spec.input_name, spec.output_name)
        simplified, se_pools = all(passes["simplified"]), sum(passes["se_pools"])
    else:
        if external:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="fw-export-", dir=out.parent) as work:
                proto = _torch_to_onnx_external(model, spec, opset, Path(work))
            simplify = False   # onnxsim serialises the whole model: impossible over 2 GiB
        else:
            proto = onnx.load_from_string(_torch_to_onnx_bytes(model, spec, opset))
        simplified = False
        if simplify:
            proto, simplified = _simplify(proto)
        se_pools = reduce_mean_to_global_pool(proto) if not external else 0
    versions = {"torch": str(torch.__version__), "onnx": str(onnx.__version__), "opset": opset}
    try:
        import timm
        versions["timm"] = str(timm.__version__)
    except ImportError:
        pass
    spec = spec.with_provenance(export={"tool": "fakewatch export onnx", "versions": versions,
                                        "simplified": simplified,
                                        "reduce_mean_to_global_pool": se_pools,
                                        **({"external_data": out.name + ".data"} if external else {})})
    embed_in_onnx(proto, spec)
    tmp = out.with_name(out.name + ".partial")
    try:
        if external:   # the checker reads a model over 2 GiB only from its path
            _save(proto, tmp, out, external)
            del proto
            onnx.checker.check_model(str(tmp), full_check=True)
        else:
            onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        if external:
            out.with_name(out.name + ".data").unlink(missing_ok=True)
        raise ExportError(f"onnx.checker rejected the exported graph: {exc}") from None
    if not external:
        _save(proto, tmp, out, external)
    try:
        diff, scale = verify_onnx(tmp, model, spec, batches=verify_batches, tolerance=tolerance)
    except Exception:
        tmp.unlink(missing_ok=True)
        if external:
            out.with_name(out.name + ".data").unlink(missing_ok=True)
        raise
    tmp.replace(out)
    write_sidecar(out, spec)
    params = sum(int(p.numel()) for p in model.parameters())
    size = out.stat().st_size + (out.with_name(out.name + ".data").stat().st_size if external else 0)
    return ExportReport(out, spec, params, size, diff, scale, tuple(verify_batches),
                        time.perf_counter() - t0, simplified, list(notes or []))
