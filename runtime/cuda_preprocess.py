"""Fused GPU preprocessing (``runtime/cuda/preprocess.cu``): packing, the NumPy twin of the kernel, launchers.

The kernel turns a batch of uint8 BGR frames (each with its own size and ROI box) into the model input
(N, 3, H, W) in one launch, writing fp32 or fp16 straight into the TensorRT engine's input buffer. Three layers:

* **packing** (pure Python, CPU-tested): all crops (or whole frames) go into one byte buffer - a page-locked
  staging buffer on the GPU path - plus an int64 table with one row per image
  ``[offset, width, height, row_stride, x0, y0, x1, y1]`` (:data:`TABLE_FIELDS`).
* :func:`reference_bilinear`: NumPy float implementation of exactly the kernel's math on the packed batch. The
  CPU tests compare it with :func:`fakewatch.core.preprocess.preprocess` (cv2's fixed-point INTER_LINEAR); the GPU
  tests compare the kernel with it.
* launchers: :class:`PycudaPreprocessor` (used by the TensorRT runner, compiled at run time with
  ``pycuda.compiler.SourceModule``) and :class:`CupyPreprocessor` (``cupy.RawModule``, for GPU tests / CuPy
  users). Both import their library lazily.

For the pipeline: :func:`preprocess_into` fills a GPU runner's input buffer; the runner's ``infer_prepared(n)``
then runs the engine on it without another host copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from fakewatch.core.contract import ModelSpec
from fakewatch.core.roi import Box
from fakewatch.runtime.cuda import kernel_source_path

TABLE_FIELDS = 8
T_OFFSET, T_WIDTH, T_HEIGHT, T_STRIDE, T_X0, T_Y0, T_X1, T_Y1 = range(TABLE_FIELDS)
BLOCK = (32, 8, 1)
KERNELS = {np.dtype(np.float32): "fw_preprocess_f32", np.dtype(np.float16): "fw_preprocess_f16"}
_ALIGN = 16  # start every image on a 16-byte boundary (cheap; keeps rows friendly to wide loads later)

#: Tolerance between the kernel's float math (== reference_bilinear) and cv2's fixed-point INTER_LINEAR with
#: uint8 rounding (fakewatch.core.preprocess.preprocess), in normalised model-input units. Measured on CPU over random
#: and smooth images, down- and up-scaling, odd crops (tests/runtime/test_tensorrt_preprocess.py): max 0.0138
#: (= 0.79 uint8 step), mean 0.0047; identical (0.0) when the crop already has the output size. One uint8 step
#: is 1/(255*0.229) = 0.0171 with ImageNet std, so the bound is "under one uint8 step".
CV2_MAX_ABS_DIFF = 0.0150
CV2_MAX_UINT8_STEPS = 1.0


def kernel_source() -> str:
    return kernel_source_path().read_text()


def check_kernel_supports(spec: ModelSpec) -> None:
    """The kernel computes the ``resize="linear"`` stretch only; other contracts must use CPU preprocessing."""
    if spec.resize != "linear":
        raise ValueError(
            f"CUDA preprocessing implements resize 'linear' only, but this model's contract asks for "
            f"{spec.resize!r} ({spec.variant}); preprocess it with fakewatch.core.preprocess.preprocess (the CPU "
            f"reference implements every rule; the watch pipeline switches to it by itself for such models)")


# ----------------------------------------------------------------------------- packing (pure)
@dataclass
class PackedBatch:
    """Frames packed for one kernel launch: ``data[:nbytes]`` bytes and one table row per output image."""

    data: np.ndarray      # uint8, 1-D (may be longer than nbytes when it is a reused staging buffer)
    table: np.ndarray     # int64 (N, TABLE_FIELDS)
    nbytes: int

    def __len__(self) -> int:
        return int(self.table.shape[0])


def _check_pair(i: int, image: np.ndarray, box: Box) -> tuple[int, int, int, int]:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise ValueError(f"preprocess: image {i} must be a uint8 BGR array (H, W, 3), got {got}")
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"preprocess: box {i} {tuple(box)} is empty or outside its {w}x{h} image; boxes are "
                         f"(x0, y0, x1, y1) with 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height")
    return x0, y0, x1, y1


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def packed_size(images: Sequence[np.ndarray], boxes: Sequence[Box], crop_on_host: bool = True) -> int:
    """Bytes :func:`pack_frames` needs for this batch (so a staging buffer can be sized before packing)."""
    if len(images) != len(boxes):
        raise ValueError(f"preprocess: {len(images)} images but {len(boxes)} boxes")
    total, seen = 0, set()
    for i, (image, box) in enumerate(zip(images, boxes)):
        x0, y0, x1, y1 = _check_pair(i, image, box)
        if crop_on_host:
            total += _aligned((x1 - x0) * (y1 - y0) * 3)
        elif id(image) not in seen:
            seen.add(id(image))
            total += _aligned(image.shape[0] * image.shape[1] * 3)
    return total


def pack_frames(images: Sequence[np.ndarray], boxes: Sequence[Box], out: np.ndarray | None = None,
                crop_on_host: bool = True) -> PackedBatch:
    """Pack a batch for the kernel.

    ``crop_on_host=True`` copies only each ROI (a face is a small part of a 1080p frame, so this cuts the
    host->device copy by 10-50x); ``False`` copies each distinct frame once and lets the kernel crop (several
    faces of one frame then share its bytes). ``out``: a reusable uint8 buffer (page-locked on the GPU path);
    it must hold :func:`packed_size` bytes.
    """
    nbytes = packed_size(images, boxes, crop_on_host)
    if out is None:
        out = np.empty(max(nbytes, 1), np.uint8)
    elif out.dtype != np.uint8 or out.ndim != 1 or out.size < nbytes:
        raise ValueError(f"pack_frames: staging buffer must be 1-D uint8 with at least {nbytes} bytes, got "
                         f"{out.dtype} {out.shape}")
    table = np.zeros((len(images), TABLE_FIELDS), np.int64)
    pos, placed = 0, {}
    for i, (image, box) in enumerate(zip(images, boxes)):
        x0, y0, x1, y1 = _check_pair(i, image, box)
        if crop_on_host:
            src = image[y0:y1, x0:x1]
            h, w = src.shape[:2]
            out[pos:pos + h * w * 3].reshape(h, w, 3)[...] = src
            table[i] = (pos, w, h, w * 3, 0, 0, w, h)
            pos += _aligned(h * w * 3)
        else:
            h, w = image.shape[:2]
            if id(image) not in placed:
                out[pos:pos + h * w * 3].reshape(h, w, 3)[...] = image
                placed[id(image)] = pos
                pos += _aligned(h * w * 3)
            table[i] = (placed[id(image)], w, h, w * 3, x0, y0, x1, y1)
    return PackedBatch(out, table, nbytes)


# ----------------------------------------------------------------------------- the kernel's math, in NumPy
def norm_params(spec: ModelSpec) -> tuple[int, np.ndarray, np.ndarray]:
    """(swap_rb, scale[3], bias[3]) per *output* channel: out = v * scale + bias = (v/255 - mean)/std."""
    std = np.asarray(spec.std, np.float32)
    mean = np.asarray(spec.mean, np.float32)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    bias = (-mean / std).astype(np.float32)
    return (1 if spec.channel_order == "RGB" else 0), scale, bias


def _axis(out_len: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # float32 like the kernel: src = (dst + 0.5) * (size / out_len) - 0.5, clamped as OpenCV INTER_LINEAR does
    scale = np.float32(size) / np.float32(out_len)
    src = (np.arange(out_len, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    lo = np.floor(src).astype(np.int64)
    frac = (src - lo.astype(np.float32)).astype(np.float32)
    low = lo < 0
    lo[low], frac[low] = 0, 0.0
    high = lo >= size - 1
    lo[high], frac[high] = size - 1, 0.0
    hi = np.minimum(lo + 1, size - 1)
    return lo, hi, frac


def reference_from_packed(packed: PackedBatch, spec: ModelSpec, out_dtype: Any = np.float32) -> np.ndarray:
    """What the kernel writes for ``packed``: (N, 3, H, W) in ``out_dtype`` (float32 math, like the GPU)."""
    h, w = spec.input_size
    swap_rb, scale, bias = norm_params(spec)
    out = np.empty((len(packed), 3, h, w), np.float32)
    for i, row in enumerate(packed.table):
        off, iw, ih, stride, x0, y0, x1, y1 = (int(v) for v in row)
        img = np.lib.stride_tricks.as_strided(packed.data[off:], shape=(ih, iw, 3), strides=(stride, 3, 1))
        crop = img[y0:y1, x0:x1].astype(np.float32)
        xl, xh, wx = _axis(w, x1 - x0)
        yl, yh, wy = _axis(h, y1 - y0)
        wx, wy = wx[None, :, None], wy[:, None, None]
        top = crop[yl][:, xl] + (crop[yl][:, xh] - crop[yl][:, xl]) * wx
        bot = crop[yh][:, xl] + (crop[yh][:, xh] - crop[yh][:, xl]) * wx
        bgr = top + (bot - top) * wy                     # (h, w, 3) float32, not rounded (cv2 rounds to uint8)
        chw = bgr[..., ::-1] if swap_rb else bgr
        out[i] = chw.transpose(2, 0, 1) * scale[:, None, None] + bias[:, None, None]
    return out.astype(out_dtype, copy=False)


def reference_bilinear(images: Sequence[np.ndarray], boxes: Sequence[Box], spec: ModelSpec,
                       out_dtype: Any = np.float32, crop_on_host: bool = True) -> np.ndarray:
    """NumPy float twin of the CUDA kernel: pack, then :func:`reference_from_packed`."""
    return reference_from_packed(pack_frames(images, boxes, crop_on_host=crop_on_host), spec, out_dtype)


def launch_geometry(n: int, h: int, w: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(grid, block) of the single launch for a batch of n outputs of h x w."""
    return ((w + BLOCK[0] - 1) // BLOCK[0], (h + BLOCK[1] - 1) // BLOCK[1], n), BLOCK


def _kernel_args(spec: ModelSpec) -> tuple:
    swap_rb, scale, bias = norm_params(spec)
    h, w = spec.input_size
    return (np.int32(h), np.int32(w), np.int32(swap_rb), *(np.float32(v) for v in scale),
            *(np.float32(v) for v in bias))


def _kernel_name(out_dtype: Any) -> str:
    dt = np.dtype(out_dtype)
    if dt not in KERNELS:
        raise ValueError(f"CUDA preprocessing writes float32 or float16, not {dt}")
    return KERNELS[dt]


def grown_capacity(needed: int, minimum: int) -> int:
    """Next power of two >= ``needed`` (and >= ``minimum``): staging buffers grow a bounded number of times."""
    cap = max(int(minimum), 1)
    while cap < needed:
        cap *= 2
    return cap


def compile_or_fallback(make: Callable[[], Any]) -> tuple[Any, str | None]:
    """Build the fused preprocessor now (``make`` compiles the kernel); on failure return ``(None, why)`` so the
    runner falls back to host preprocessing with one message instead of a traceback on the first batch."""
    try:
        return make(), None
    except Exception as exc:      # nvcc missing, CUDA headers missing, NVRTC/driver errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, (f"fused CUDA preprocessing is off ({type(exc).__name__}: {first[:300]}); frames are "
                      f"preprocessed on the CPU instead. pycuda compiles runtime/cuda/preprocess.cu with nvcc: "
                      f"install the CUDA toolkit (nvcc on PATH; on a Jetson: export PATH=/usr/local/cuda/bin:$PATH)")


# ----------------------------------------------------------------------------- pycuda launcher (TensorRT path)
class PycudaPreprocessor:
    """Compiles the kernel in the *current* pycuda context and launches it on a given stream.

    Create, use and free it with the runner's context pushed. Staging buffers grow on demand and are reused;
    the caller must synchronise the stream before the next :meth:`enqueue` (the TensorRT runner does).
    """

    def __init__(self, spec: ModelSpec, crop_on_host: bool = True) -> None:
        import pycuda.driver as cuda  # lazy: only on a GPU machine
        from pycuda.compiler import SourceModule

        check_kernel_supports(spec)
        self._cuda = cuda
        self.spec = spec
        self.crop_on_host = crop_on_host
        # no_extern_c: the .cu declares its own extern "C" kernels around a C++ template
        self._module = SourceModule(kernel_source(), no_extern_c=True, options=["-O3"])
        self._fns = {dt: self._module.get_function(name) for dt, name in KERNELS.items()}
        self._host = None
        self._dev = None
        self._dev_bytes = 0
        self._table_host = None
        self._table_dev = None
        self._table_rows = 0

    def _ensure(self, nbytes: int, rows: int) -> None:
        """Grow the staging buffers (to the next power of two, so a slowly growing frame size does not reallocate
        every batch), freeing the old device allocations explicitly: pycuda frees a DeviceAllocation only when
        garbage-collected, which may be after the context is gone (the caller has synchronised the stream)."""
        cuda = self._cuda
        if self._host is None or self._host.size < nbytes:
            cap = grown_capacity(nbytes, 1 << 20)
            if self._dev is not None:
                self._dev.free()
            self._host = cuda.pagelocked_empty(cap, np.uint8)
            self._dev = cuda.mem_alloc(cap)
            self._dev_bytes = cap
        if self._table_host is None or self._table_rows < rows:
            self._table_rows = grown_capacity(rows, 8)
            if self._table_dev is not None:
                self._table_dev.free()
            self._table_host = cuda.pagelocked_empty((self._table_rows, TABLE_FIELDS), np.int64)
            self._table_dev = cuda.mem_alloc(self._table_host.nbytes)

    def enqueue(self, images: Sequence[np.ndarray], boxes: Sequence[Box], out_ptr: int, out_dtype: Any,
                stream: Any) -> int:
        """Pack, copy and launch on ``stream`` (asynchronous); returns the number of images written."""
        n = len(images)
        if n == 0:
            return 0
        fn = self._fns[np.dtype(_kernel_name(out_dtype))]
        self._ensure(packed_size(images, boxes, self.crop_on_host), n)
        packed = pack_frames(images, boxes, out=self._host, crop_on_host=self.crop_on_host)
        self._table_host[:n] = packed.table
        cuda = self._cuda
        cuda.memcpy_htod_async(self._dev, self._host[:packed.nbytes], stream)
        cuda.memcpy_htod_async(self._table_dev, self._table_host[:n], stream)
        grid, block = launch_geometry(n, *self.spec.input_size)
        fn(self._dev, self._table_dev, np.uintp(int(out_ptr)), *_kernel_args(self.spec),
           grid=grid, block=block, stream=stream)
        return n

    def free(self) -> None:
        for buf in (self._dev, self._table_dev):
            if buf is not None:
                buf.free()
        self._host = self._dev = self._table_host = self._table_dev = None


# ----------------------------------------------------------------------------- CuPy launcher (tests, CuPy users)
class CupyPreprocessor:
    """Same kernel through ``cupy.RawModule`` (NVRTC). Returns a CuPy array (N, 3, H, W)."""

    def __init__(self, spec: ModelSpec, crop_on_host: bool = True) -> None:
        import cupy as cp  # lazy

        check_kernel_supports(spec)
        self._cp = cp
        self.spec = spec
        self.crop_on_host = crop_on_host
        self._module = cp.RawModule(code=kernel_source(), options=("--std=c++14",),
                                    name_expressions=None)

    def __call__(self, images: Sequence[np.ndarray], boxes: Sequence[Box], out_dtype: Any = np.float32,
                 out: Any = None) -> Any:
        cp = self._cp
        fn = self._module.get_function(_kernel_name(out_dtype))
        h, w = self.spec.input_size
        packed = pack_frames(images, boxes, crop_on_host=self.crop_on_host)
        n = len(packed)
        if out is None:
            out = cp.empty((n, 3, h, w), dtype=out_dtype)
        if n == 0:
            return out
        data = cp.asarray(packed.data[:packed.nbytes])
        table = cp.asarray(packed.table)
        grid, block = launch_geometry(n, h, w)
        fn(grid, block, (data, table, out, *_kernel_args(self.spec)))
        return out


# ----------------------------------------------------------------------------- the pipeline's entry point
def preprocess_into(runner: Any, images: Sequence[np.ndarray], boxes: Sequence[Box]) -> int:
    """Fill a GPU runner's input buffer from frames + boxes (one kernel launch); returns the batch size n.

    Follow with ``runner.infer_prepared(n)``. Only runners with ``accepts_device_input = True`` (the TensorRT
    runner) support this; others take :func:`fakewatch.core.preprocess.preprocess` output through ``runner.infer``.
    """
    if not getattr(runner, "accepts_device_input", False):
        raise ValueError(f"{getattr(runner, 'name', type(runner).__name__)} runner does not take GPU-preprocessed "
                         f"input; use fakewatch.core.preprocess.preprocess + runner.infer")
    if len(images) != len(boxes):
        raise ValueError(f"preprocess: {len(images)} images but {len(boxes)} boxes")
    if runner.max_batch is not None and len(images) > runner.max_batch:
        raise ValueError(f"batch {len(images)} exceeds this engine's max batch {runner.max_batch}; split it")
    return runner.preprocess_on_device(images, boxes)


__all__ = ["CV2_MAX_ABS_DIFF", "CV2_MAX_UINT8_STEPS", "CupyPreprocessor", "compile_or_fallback", "grown_capacity", "PackedBatch", "PycudaPreprocessor",
           "TABLE_FIELDS", "kernel_source", "launch_geometry", "norm_params", "pack_frames", "packed_size", "preprocess_into",
           "reference_bilinear", "reference_from_packed"]
