"""Built-in search spaces, shipped as YAML files beside this module."""

from __future__ import annotations

from pathlib import Path

SPACES_DIR = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def builtin_path(name: str) -> Path | None:
    """The file of a built-in space given its name (``hybrid``) or None."""
    candidate = SPACES_DIR / f"{name}.yaml"
    return candidate if candidate.exists() else None
