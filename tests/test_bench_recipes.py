"""bench/recipes.py at the recipes' smoke scale: it runs a recipe, pits its search against a
random twin of equal budget, and writes its section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import recipes as bench  # noqa: E402


def test_the_table_has_the_recipe_and_its_random_twin(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    runs = tmp_path / "runs"
    argv = ["--recipes", "as_vit", "--smoke", "--runs-dir", str(runs), "--out", str(out)]
    assert bench.main(argv) == 0
    text = out.read_text()
    assert bench.TITLE in text
    row = next(line for line in text.splitlines() if line.startswith("| as_vit |"))
    assert "HV" in row and "vs" in row
    twin = runs / "recipe-as_vit-smoke" / "search-random"
    config = json.loads((twin / "config.json").read_text())
    assert config["strategy"]["name"] == "random"
    original = json.loads((runs / "recipe-as_vit-smoke" / "search" / "config.json").read_text())
    assert config["budget"] == original["budget"] and config["evaluators"] == original["evaluators"]
