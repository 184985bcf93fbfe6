"""Writing files so that a kill or a full disk never leaves a half-written one behind.

Every file ferbench writes goes through a temporary name of its own process (``<name>.<pid>.tmp``) and is
renamed over the final name only once complete, so readers see the old file or the new one, never a part;
concurrent writers never share a temporary file; and a failed write removes its temporary file. Failures
of the file system become a one-line :class:`~ferbench.errors.StorageError` naming what and where.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .errors import StorageError

#: ``<name>.<pid>.tmp``: the temporary name a process writes ``<name>`` through.
TEMPORARY = re.compile(r"^(?P<name>.+)\.(?P<pid>\d+)\.tmp$")

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is exhausted: free some space",
    errno.EACCES: "permission denied: make it writable or choose another location",
    errno.EPERM: "permission denied: make it writable or choose another location",
    errno.EROFS: "the file system is read-only: choose another location",
}


def temporary_name(path: Path, pid: int | None = None) -> Path:
    """The name this process (or ``pid``) writes ``path`` through."""
    return path.with_name(f"{path.name}.{os.getpid() if pid is None else pid}.tmp")


def describe(exc: OSError, what: str, path: Path) -> str:
    """One line: what could not be written, where, why and what to do."""
    where = exc.filename or path
    why = _HINTS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    return f"cannot write {what} {where}: {why}"


def ensure_dir(folder: Path, what: str) -> Path:
    """Create ``folder`` (and its parents) or raise a StorageError naming the part in the way."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        if not blocker.is_dir():
            raise StorageError(f"cannot create the {what} folder {folder}: {blocker} is a file, not a folder "
                               "(check FERBENCH_HOME, FERBENCH_DB or --db)") from None
        raise StorageError(describe(exc, f"the {what} folder", folder)) from None
    if not folder.is_dir():
        raise StorageError(f"cannot use the {what} folder {folder}: it is a file, not a folder")
    return folder


@contextlib.contextmanager
def replacing(path: Path, what: str) -> Iterator[Path]:
    """Yield this process's temporary name for ``path``; once the block has written it, rename it over
    ``path``. On any failure the temporary file is removed; an OSError becomes a StorageError."""
    ensure_dir(path.parent, what)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(describe(exc, what, path)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_atomically(path: Path, write: Callable[[BinaryIO], None], what: str) -> None:
    """Write ``path`` with ``write(file)`` through a temporary file (see :func:`replacing`). Writers get a
    file object, not a name, so that their write errors arrive as OSError (torch.save given a name
    reports a full disk as an opaque RuntimeError)."""
    with replacing(path, what) as tmp:
        with open(tmp, "wb") as file:
            write(file)


def write_bytes(path: Path, data: bytes, what: str) -> None:
    """:func:`write_atomically` for bytes already in memory."""
    write_atomically(path, lambda file: file.write(data), what)


def reserve_space(path: Path) -> None:
    """Allocate the blocks of ``path``'s current size (a sparse file about to be memory-mapped), so that a
    full disk shows now as an OSError rather than later as a SIGBUS on a write through the map."""
    with open(path, "r+b") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, os.path.getsize(path))
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems without fallocate
                raise


def remove_temporaries(folder: Path) -> None:
    """Delete the temporary files other processes left in ``folder`` (call only while holding the lock
    that makes this process its only writer)."""
    if folder.is_dir():
        for path in folder.glob("*.tmp"):
            if (match := TEMPORARY.match(path.name)) and int(match["pid"]) != os.getpid():
                with contextlib.suppress(OSError):
                    path.unlink()


def stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files under ``folder`` whose writing process is gone (left by a kill)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.rglob("*.tmp")
                  if (match := TEMPORARY.match(path.name)) and not pid_alive(int(match["pid"])))


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
