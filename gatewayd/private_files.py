"""Files and directories only the kit's own user may read, whatever the umask.

Shared by every part that keeps state on disk: the job journal holds install codes and MPANs,
and outside systemd (``UMask=0077``) a process usually runs with a umask of 0022, which would
leave them readable by every user of the machine. So modes are set explicitly (a mode given
to ``open`` or ``mkdir`` is masked by the umask, a ``chmod`` is not), and what an older
version left with a looser mode is tightened.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "Tightened",
    "create_private_file",
    "make_private_dir",
    "private_opener",
    "tighten_tree",
]

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700

# Bits that let anyone but the owner in.
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """An ``opener`` for ``open()``: the file is 0600, whether it creates it or finds it
    (a temporary file left by an older version, say) with a looser mode."""
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and 0600 unless it exists (SQLite then gives its log and index
    the database file's mode); True when it created it."""
    try:
        fd = private_opener(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def make_private_dir(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, each directory it creates 0700; one that
    exists is left as it is."""
    if path.is_dir():
        return
    if path.parent != path:
        make_private_dir(path.parent)
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        if path.is_dir():  # made meanwhile by someone else: theirs, not ours to change
            return
        raise
    os.chmod(path, PRIVATE_DIR)


@dataclass
class Tightened:
    """What ``tighten_tree`` changed, and what it could not change (with the OS error)."""

    changed: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def tighten_tree(root: Path) -> Tightened:
    """Take group and other permissions off every file and directory under ``root`` (not
    ``root`` itself, nor what a symbolic link points to)."""
    done = Tightened()

    def failed(exc: OSError) -> None:
        done.failed.append((Path(exc.filename or root), exc.strerror or str(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=failed):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            try:
                st = os.lstat(path)
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    continue
                mode = stat.S_IMODE(st.st_mode)
                if mode & _OTHERS:
                    os.chmod(path, mode & ~_OTHERS)
                    done.changed.append(path)
            except FileNotFoundError:
                continue  # removed meanwhile (a journal entry ending)
            except OSError as exc:
                done.failed.append((path, exc.strerror or str(exc)))
    return done
