"""File tests on paths a user wrote: a name too long for the file system, or with a NUL byte,
is a path that does not exist, not an exception (`pathlib` raises for those)."""

from __future__ import annotations

from pathlib import Path


def exists(path: str | Path) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def is_file(path: str | Path) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: str | Path) -> bool:
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False
