"""Cross-process locks on files (``fcntl.flock``): released when the holder closes them, exits or is killed.

:class:`FileLock` serialises the writers of a cache entry; :class:`RunLock` lets one process at a time
execute a run key and tells the others which process (pid, host, since when) holds it.
"""
from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from . import provenance
from .diskio import ensure_dir
from .errors import StorageError


class FileLock:
    """An exclusive lock on ``path`` (created if missing). As a context manager it waits for the lock."""

    def __init__(self, path: Path, what: str = "lock") -> None:
        self.path, self.what = path, what
        self._file: TextIO | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; without ``blocking``, return False at once when another process holds it."""
        ensure_dir(self.path.parent, self.what)
        try:
            file = open(self.path, "a+")
        except OSError as exc:
            raise StorageError(f"cannot create the {self.what} file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(file, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            file.close()
            return False
        except BaseException:  # Ctrl-C while waiting
            file.close()
            raise
        self._file = file
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunLock(FileLock):
    """The lock of one run key, ``<artifacts>/locks/<run key>.lock``; its holder writes who it is into it."""

    def __init__(self, artifacts_dir: Path, run_key: str) -> None:
        super().__init__(artifacts_dir / "locks" / f"{run_key}.lock", "run lock")
        self.run_key = run_key
        self._holder: dict[str, Any] = {}

    def acquire(self, blocking: bool = True) -> bool:
        if not super().acquire(blocking):
            return False
        self._holder = {"pid": os.getpid(), "host": provenance.host(), "since": f"{datetime.now():%Y-%m-%d %H:%M:%S}"}
        self.describe()
        return True

    def describe(self, **fields: Any) -> None:
        """Record ``fields`` (e.g. the run id) beside pid, host and start time in the held lock file."""
        assert self._file is not None, "describe() needs the lock"
        self._holder.update(fields)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps(self._holder))
        self._file.flush()

    def holder(self) -> dict[str, Any]:
        """What the holding process wrote (empty when unknown: it may have only just taken the lock)."""
        try:
            return dict(json.loads(self.path.read_text() or "{}"))
        except (OSError, ValueError):
            return {}

    def holder_text(self) -> str:
        """``process 1234 on host x (since ...)``, as far as it is known."""
        holder = self.holder()
        if "pid" not in holder:
            return "another process"
        return f"process {holder['pid']} on host {holder.get('host', '?')} (since {holder.get('since', '?')})"

    def is_free(self) -> bool:
        """Whether no process holds the lock now (probed without waiting and without taking it over)."""
        if self._file is not None:
            return False
        try:
            file = open(self.path)
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise StorageError(f"cannot read the {self.what} file {self.path}: {exc.strerror or exc}") from None
        with file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
