"""A small disk of its own for the kit's state directory, to fill and free mid-run.

A tmpfs mounted on the state directory (this needs root and a kernel that lets us mount;
``mount_tmpfs`` says why not when it cannot) and a filler file that takes every byte left
on it, then goes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

CHUNKS = (1 << 20, 4096, 512, 1)  # big writes first, then the last crumbs


def mount_tmpfs(where: Path, size_mib: int) -> str | None:
    """Mount a tmpfs of ``size_mib`` MiB on ``where``; None, or why it cannot be done."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a small disk for the state directory needs root"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"mount is not permitted here: {done.stderr.strip() or done.returncode}"
    return None


def unmount(where: Path) -> None:
    # Lazy: a process that still holds a file there must not keep the mount for ever.
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(filler: Path) -> int:
    """Write ``filler`` until the disk is full; the bytes it took."""
    taken = 0
    with filler.open("wb", buffering=0) as out:
        for size in CHUNKS:
            block = b"\0" * size
            while True:
                try:
                    taken += out.write(block) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return taken


def free(filler: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        filler.unlink()
