"""mypy over every package (pyproject's ``[tool.mypy] files``) reports nothing.

About 30 s from a cold cache on two busy cores, a few seconds with the ``.mypy_cache`` a previous
run left; `make lint` runs the same check.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["search_space", "predictors", "evaluators", "strategies", "mixnas"]


def test_mypy_covers_every_package() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert sorted(config["files"]) == sorted(PACKAGES)


def test_mypy_is_clean() -> None:
    pytest.importorskip("mypy")
    done = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
