"""Leftovers of killed processes, found by the process id in their names.

Shared-memory regions and temporary folders are named ``<prefix><pid><sep>…`` by the process that made them; a
process killed with SIGKILL (or a power loss) cannot remove them, so the next process of the same kind does. A
service restarted by a supervisor for months must not fill /dev/shm or /tmp.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

#: where POSIX shared memory (shm_open) lives on Linux
SHM_DIR = Path("/dev/shm")


def owner_pid(name: str, prefix: str, sep: str) -> int | None:
    """The process id in ``<prefix><pid><sep>…``, or None when the name does not have that form."""
    if not name.startswith(prefix):
        return None
    head = name[len(prefix):].split(sep, 1)[0]
    return int(head) if head.isdigit() else None


def remove_dead_owners(folder: Path, prefix: str, sep: str = "_") -> list[Path]:
    """Remove the files and folders in ``folder`` named ``<prefix><pid><sep>…`` whose process is gone."""
    removed = []
    for path in sorted(folder.glob(prefix + "*")) if folder.is_dir() else ():
        pid = owner_pid(path.name, prefix, sep)
        if pid is None or pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:      # another process removed it first, or it is not ours to remove
            continue
    return removed
