"""One driver per run folder: an exclusive lock held while a driver writes the folder.

Two drivers on one folder would ask the same candidates, write the same checkpoint and race on
its temporary file. The lock is an OS file lock (``flock``) on ``.lock`` in the run folder: the
kernel drops it when its process ends however it ends (SIGKILL included), so a killed run never
leaves a stale lock behind, and the file names the holder's PID for the message a second driver
gets.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mixnas.config import ConfigError

LOCK_NAME = ".lock"


class RunLock:
    """Context manager: holds the run folder's lock or raises `ConfigError` naming the holder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                "--resume",
                f"the run folder is in use by another mixnas driver (pid {holder}); wait for it "
                "to finish or stop it first",
                value=str(self.path.parent),
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None
