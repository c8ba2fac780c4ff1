"""Cap glibc's malloc arenas for long runs.

glibc gives threads their own malloc arenas (up to 8 x cores); with a reader thread per camera and FFmpeg reopening
captures on every reconnect, freed memory stays fragmented across arenas and RSS creeps up. Measured by
benchmarks/soak.py (30 min, 4 RTSP killed every 60 s + 4 files): +6.4 % RSS from minute 1 with glibc's default,
+2.1 % with MALLOC_ARENA_MAX=2 (benchmarks/results/soak, soak-arena2). ``mallopt(M_ARENA_MAX, n)`` at start does
the same for arenas created afterwards (the reader threads start later). A MALLOC_ARENA_MAX set by the user wins.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_ARENA_MAX = -8          # glibc <malloc.h>


def limit_malloc_arenas(n: int = 2) -> bool:
    """True when the cap was applied (glibc on Linux, no MALLOC_ARENA_MAX in the environment)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ or n < 1:
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_ARENA_MAX, int(n)))   # musl has no mallopt: AttributeError below
    except (OSError, AttributeError):
        return False
