"""Input batches through system shared memory when the Triton server runs on this machine.

Over gRPC every batch is serialised into the request (1.2 MB for 8 crops of 112 px; 14 MB for 8 at 380 px) and
parsed again by the server. With Triton's *system shared memory* extension the client writes the batch once into a
POSIX shared-memory region the server has registered and sends only (region, offset, size) — what perf_analyzer's
``--shared-memory system`` does. It works only when client and server share a machine (or an IPC namespace), so the
runner uses it for loopback URLs (``shm="auto"``) and falls back to gRPC bytes whenever registration fails.

One region holds a few slots, one per request in flight; a request takes a free slot and gives it back when its
answer (or error) arrives, so a slot is never rewritten while the server may still read it. Regions are named after
the process id: leftovers of a crashed client are removed by the next client that starts (:func:`remove_stale`).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from fakewatch.core.stale import SHM_DIR, remove_dead_owners

PREFIX = "fakewatch_triton_"
#: at most this much shared memory per runner (Docker's default /dev/shm is 64 MB)
MAX_BYTES = 48 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def remove_stale(shm_dir: Path = SHM_DIR) -> list[str]:
    """Unlink regions left by fakewatch clients whose process is gone; returns their names."""
    return [p.name for p in remove_dead_owners(shm_dir, PREFIX)]


class InputSlots:
    """``slots`` equal parts of one system shared-memory region, each big enough for a full input batch."""

    def __init__(self, slot_bytes: int, slots: int, tag: str) -> None:
        import tritonclient.utils.shared_memory as shm

        if slot_bytes <= 0 or slots < 1:
            raise ValueError(f"shared-memory slots need slot_bytes > 0 and slots >= 1 (got {slot_bytes}, {slots})")
        self._shm = shm
        self.slot_bytes = int(slot_bytes)
        self.slots = int(slots)
        self.name = f"{PREFIX}{os.getpid()}_{tag}"
        self.key = "/" + self.name
        remove_stale()
        self._handle = shm.create_shared_memory_region(self.name, self.key, self.slot_bytes * self.slots,
                                                       create_only=True)
        self._free = list(range(self.slots))
        self._lock = threading.Lock()
        self.registered = False

    @classmethod
    def for_batches(cls, max_batch: int, item_bytes: int, in_flight: int, tag: str) -> "InputSlots | None":
        """Slots for ``in_flight`` requests (+1 spare) of up to ``max_batch`` items; None when over MAX_BYTES."""
        slot = max_batch * item_bytes
        slots = min(in_flight + 1, MAX_BYTES // slot) if slot <= MAX_BYTES else 0
        return cls(slot, slots, tag) if slots >= 1 else None

    def register(self, client, timeout_s: float) -> None:
        """Register the region with the server (again after a server restart: registrations do not survive it)."""
        try:
            client.unregister_system_shared_memory(self.name, client_timeout=timeout_s)
        except Exception:   # not registered there (a fresh server): nothing to undo
            pass
        client.register_system_shared_memory(self.name, self.key, self.slot_bytes * self.slots,
                                             client_timeout=timeout_s)
        self.registered = True

    def put(self, x: np.ndarray) -> int | None:
        """Copy ``x`` into a free slot; returns the slot's byte offset, or None when all slots are in use."""
        if x.nbytes > self.slot_bytes:
            return None
        with self._lock:
            if not self._free:
                return None
            slot = self._free.pop()
        offset = slot * self.slot_bytes
        self._shm.set_shared_memory_region(self._handle, [x], offset=offset)
        return offset

    def release(self, offset: int) -> None:
        with self._lock:
            self._free.append(offset // self.slot_bytes)

    def close(self, client=None, timeout_s: float = 2.0) -> None:
        """Unregister (when a client is given and the server answers) and unlink the region."""
        if client is not None and self.registered:
            try:
                client.unregister_system_shared_memory(self.name, client_timeout=timeout_s)
            except Exception:   # a dead server forgot it already
                pass
        self.registered = False
        if self._handle is not None:
            self._shm.destroy_shared_memory_region(self._handle)
            self._handle = None
