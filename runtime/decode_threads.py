"""How many FFmpeg decoder threads each stream gets.

OpenCV's FFmpeg backend gives every decoder one thread per CPU (frame threading). With more streams than cores
those pools oversubscribe the CPU: each frame-threaded decoder also holds a frame per thread in flight (latency)
and the threads contend for the same cores. Once there are at least as many streams as cores, one thread per decoder
spends less CPU per frame and the streams themselves spread over the cores
(``benchmarks/results/face_roi/decode_threads.md``). With fewer streams than cores the default keeps a single HD
stream's decode parallel.
"""
from __future__ import annotations

import os


def auto_decode_threads(n_streams: int, cpus: int | None = None) -> int:
    """0 (OpenCV's default) for fewer streams than CPUs, else 1."""
    cpus = cpus or os.cpu_count() or 1
    return 1 if n_streams >= cpus else 0
