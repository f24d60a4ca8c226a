"""Built-in search spaces, shipped as YAML files beside this module."""

from __future__ import annotations

from pathlib import Path

from search_space import paths

SPACES_DIR = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def builtin_path(name: str) -> Path | None:
    """The file of a built-in space given its name (``hybrid``) or None."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None  # a name, never a path out of this folder
    candidate = SPACES_DIR / f"{name}.yaml"
    return candidate if paths.exists(candidate) else None
