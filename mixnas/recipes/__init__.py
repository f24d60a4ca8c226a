"""Recipes: the seed papers' search methods as chains of mixnas stages (see docs/recipes.md).

`recipe` reads and checks a recipe file, `stages` runs each kind of stage through its command,
`runner` chains them in one resumable folder. The built-in recipes are the YAML files in the
repository's ``recipes/`` folder; any other file path works the same.
"""

from __future__ import annotations

from pathlib import Path

from mixnas.recipes.recipe import Recipe, RecipeError, read_recipe
from mixnas.recipes.runner import run_recipe

# the repository's recipes/ folder (beside the packages, as the CLI finds it from a clone)
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"

__all__ = ["RECIPES_DIR", "Recipe", "RecipeError", "builtin", "find_recipe", "read_recipe",
           "run_recipe"]  # fmt: skip


def builtin() -> list[Path]:
    """The built-in recipe files, by name."""
    return sorted(RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []


def find_recipe(name_or_path: str) -> Recipe:
    """A built-in recipe by name, or a recipe file by path; an unknown one is one line naming
    the built-in names."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise RecipeError(name_or_path, "<file>", "no such recipe file")
        return read_recipe(path)
    for file in builtin():
        if file.stem == name_or_path:
            return read_recipe(file)
    names = ", ".join(f.stem for f in builtin()) or f"none: no recipes folder at {RECIPES_DIR}"
    raise RecipeError("mixnas recipe", "NAME", f"{name_or_path!r} is not a recipe; known: {names}")
