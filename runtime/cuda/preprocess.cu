// fakewatch fused preprocessing: batched uint8 BGR frames -> ROI crop -> bilinear resize -> channel order ->
// (x/255 - mean)/std -> planar CHW, written as fp32 or fp16 straight into the engine's input buffer.
//
// It computes the same function as the CPU reference (runtime/preprocess.py, cv2.resize INTER_LINEAR) with the
// SAME coordinate mapping as OpenCV's INTER_LINEAR:
//     src = (dst + 0.5) * (crop_size / out_size) - 0.5,  i0 = floor(src), w = src - i0,
//     i0 < 0          -> i0 = 0,        w = 0
//     i0 >= size - 1  -> i0 = size - 1, w = 0
// The only difference: OpenCV interpolates uint8 with 11-bit fixed-point weights and rounds the result to uint8
// before we normalise; this kernel keeps the interpolated value in float. The NumPy twin of this exact math is
// runtime.cuda_preprocess.reference_bilinear; the measured gap to cv2 is written down in docs/tensorrt.md.
//
// One launch per batch: grid = (ceil(W/32), ceil(H/8), N), block = (32, 8, 1); one thread per output pixel.
// No headers are included so the same source compiles with nvcc (pycuda SourceModule, `nvcc -ptx`) and NVRTC
// (cupy.RawModule); fp16 conversion uses the PTX cvt instruction directly.

// Per-image row of the int64 table (8 fields): where the image starts in the packed byte buffer, its size and
// row stride in bytes, and the ROI box (x0, y0, x1, y1; x1/y1 exclusive) in that image's pixel coordinates.
#define FW_TAB_OFFSET 0
#define FW_TAB_WIDTH 1
#define FW_TAB_HEIGHT 2
#define FW_TAB_STRIDE 3
#define FW_TAB_X0 4
#define FW_TAB_Y0 5
#define FW_TAB_X1 6
#define FW_TAB_Y1 7
#define FW_TAB_FIELDS 8

__device__ __forceinline__ void fw_axis(int dst, float scale, int size, int* i0, int* i1, float* w) {
    float src = ((float)dst + 0.5f) * scale - 0.5f;
    int lo = (int)floorf(src);
    float frac = src - (float)lo;
    if (lo < 0) {
        lo = 0;
        frac = 0.0f;
    }
    if (lo >= size - 1) {
        lo = size - 1;
        frac = 0.0f;
    }
    *i0 = lo;
    *i1 = (lo + 1 < size) ? lo + 1 : lo;
    *w = frac;
}

__device__ __forceinline__ void fw_store(float* out, long long idx, float v) { out[idx] = v; }

__device__ __forceinline__ void fw_store(unsigned short* out, long long idx, float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    out[idx] = h;
}

template <typename T>
__device__ __forceinline__ void fw_preprocess(const unsigned char* __restrict__ frames,
                                              const long long* __restrict__ table, T* __restrict__ out,
                                              int out_h, int out_w, int swap_rb,
                                              float s0, float s1, float s2, float b0, float b1, float b2) {
    const int dx = blockIdx.x * blockDim.x + threadIdx.x;
    const int dy = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (dx >= out_w || dy >= out_h) return;

    const long long* row = table + (long long)n * FW_TAB_FIELDS;
    const unsigned char* img = frames + row[FW_TAB_OFFSET];
    const long long stride = row[FW_TAB_STRIDE];
    const int x0 = (int)row[FW_TAB_X0], y0 = (int)row[FW_TAB_Y0];
    const int crop_w = (int)(row[FW_TAB_X1] - row[FW_TAB_X0]);
    const int crop_h = (int)(row[FW_TAB_Y1] - row[FW_TAB_Y0]);

    int sx0, sx1, sy0, sy1;
    float wx, wy;
    fw_axis(dx, (float)crop_w / (float)out_w, crop_w, &sx0, &sx1, &wx);
    fw_axis(dy, (float)crop_h / (float)out_h, crop_h, &sy0, &sy1, &wy);

    const unsigned char* r0 = img + (long long)(y0 + sy0) * stride;
    const unsigned char* r1 = img + (long long)(y0 + sy1) * stride;
    const int c0 = (x0 + sx0) * 3, c1 = (x0 + sx1) * 3;

    float bgr[3];
#pragma unroll
    for (int c = 0; c < 3; ++c) {
        const float top = (float)r0[c0 + c] + ((float)r0[c1 + c] - (float)r0[c0 + c]) * wx;
        const float bot = (float)r1[c0 + c] + ((float)r1[c1 + c] - (float)r1[c0 + c]) * wx;
        bgr[c] = top + (bot - top) * wy;
    }
    // Output channel k reads source (BGR) channel 2-k for RGB models, k for BGR models.
    const float v0 = swap_rb ? bgr[2] : bgr[0];
    const float v2 = swap_rb ? bgr[0] : bgr[2];

    const long long plane = (long long)out_h * out_w;
    const long long base = (long long)n * 3 * plane + (long long)dy * out_w + dx;
    // out[k] = v[k] * s[k] + b[k] with s = 1/(255*std), b = -mean/std (per output channel)
    fw_store(out, base, v0 * s0 + b0);
    fw_store(out, base + plane, bgr[1] * s1 + b1);
    fw_store(out, base + 2 * plane, v2 * s2 + b2);
}

extern "C" __global__ void fw_preprocess_f32(const unsigned char* __restrict__ frames,
                                             const long long* __restrict__ table, float* __restrict__ out,
                                             int out_h, int out_w, int swap_rb,
                                             float s0, float s1, float s2, float b0, float b1, float b2) {
    fw_preprocess<float>(frames, table, out, out_h, out_w, swap_rb, s0, s1, s2, b0, b1, b2);
}

extern "C" __global__ void fw_preprocess_f16(const unsigned char* __restrict__ frames,
                                             const long long* __restrict__ table, unsigned short* __restrict__ out,
                                             int out_h, int out_w, int swap_rb,
                                             float s0, float s1, float s2, float b0, float b1, float b2) {
    fw_preprocess<unsigned short>(frames, table, out, out_h, out_w, swap_rb, s0, s1, s2, b0, b1, b2);
}
