"""``mixnas recipe NAME`` runs a seed paper's search method; ``mixnas recipes`` lists them.

NAME is a built-in recipe (``recipes/NAME.yaml``) or a recipe file. The run goes to
``<runs-dir>/recipe-NAME`` (``--name`` for another folder); running the same command again
continues it stage by stage. ``--smoke`` runs the recipe's tiny settings (seconds: what the tests
run). See docs/recipes.md.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any


def cmd_recipe(args: argparse.Namespace) -> int:
    from mixnas.recipes import find_recipe, run_recipe

    recipe = find_recipe(args.recipe)
    if args.smoke:
        recipe = recipe.smoked()
    name = args.name or f"recipe-{recipe.name}{'-smoke' if args.smoke else ''}"
    run_dir = Path(args.runs_dir) / name
    print(f"recipe {_named(recipe)}")
    state = run_recipe(recipe, run_dir, quiet=args.quiet)
    h = state["headline"]
    value = h["value"]
    shown = f"{value:.4g}" if isinstance(value, int | float) else str(value)
    print(f"recipe {recipe.name}: done in {run_dir}; {h['metric']} ({h['direction']}) = {shown}")
    return 0


def _named(recipe: Any) -> str:
    """``title: paper``, the title left out when the paper's title begins with it."""
    if recipe.paper.startswith(f"{recipe.title}:"):
        return str(recipe.paper)
    return f"{recipe.title}: {recipe.paper}"


def cmd_recipes(args: argparse.Namespace) -> int:
    from mixnas.recipes import builtin, read_recipe

    for path in builtin():
        recipe = read_recipe(path)
        stages = " -> ".join(f"{s.name} ({s.kind})" for s in recipe.stages)
        print(f"{recipe.name:<16} {_named(recipe)}")
        if args.verbose_list:
            print(textwrap.indent(textwrap.fill(recipe.method, 96), " " * 17))
            print(f"{'':<17}stages: {stages}")
    return 0


def add_to(sub: Any) -> None:
    run = sub.add_parser(
        "recipe",
        help="run a seed paper's search method (a recipe)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("recipe", help="a built-in recipe name (mixnas recipes) or a recipe file")
    run.add_argument("--name", help="run folder name (default: recipe-NAME)")
    run.add_argument("--runs-dir", default="runs", help="folder of run folders (default: runs)")
    run.add_argument("--smoke", action="store_true", help="the recipe's tiny settings (seconds)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_recipe)
    listing = sub.add_parser("recipes", help="list the built-in recipes")
    listing.add_argument(
        "-l", "--long", dest="verbose_list", action="store_true", help="the method and stages too"
    )
    listing.set_defaults(func=cmd_recipes)
