"""Running a recipe: its stages in order in one folder, resumable stage by stage.

The folder (``<runs_dir>/<name>``, by default ``runs/recipe-<recipe name>``) holds one sub-folder
per stage, the config each stage's command read, and ``recipe.json``: the recipe (paper, source
file), every finished stage's outputs and a fingerprint of its resolved settings, and the
headline metric. Running the same command again skips the finished stages (their outputs are
read back) and continues the first unfinished one from where its own command can (a supernet
from its checkpoint, a search with ``--resume``). A finished stage whose settings have changed
since is refused in one line: a folder never mixes two versions of a recipe.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixnas.recipes.recipe import Recipe, RecipeError, Stage, resolve
from mixnas.recipes.stages import KINDS, StageContext

STATE = "recipe.json"


def _fingerprint(stage: Stage, resolved: dict[str, Any]) -> str:
    text = json.dumps({"kind": stage.kind, **resolved}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_recipe(
    recipe: Recipe,
    run_dir: Path,
    *,
    quiet: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs (or continues) ``recipe`` in ``run_dir``; returns the state written to recipe.json."""
    from mixnas.manifest import versions, write_json_atomic

    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / STATE
    state: dict[str, Any] = {"recipe": recipe.about(), "stages": {}, "versions": versions()}
    if state_path.is_file():
        previous = json.loads(state_path.read_text())
        if previous.get("recipe", {}).get("name") != recipe.name:
            raise RecipeError(
                str(run_dir),
                "recipe",
                f"this folder holds recipe {previous.get('recipe', {}).get('name')!r}, not "
                f"{recipe.name!r}: choose another --name",
            )
        state["stages"] = previous.get("stages", {})
    home = str(Path(recipe.source).resolve().parent)
    outputs: dict[str, dict[str, Any]] = {"recipe": {"dir": str(run_dir), "home": home}}
    ctx = StageContext(run_dir, recipe.about(), quiet=quiet)
    for index, stage in enumerate(recipe.stages, 1):
        settings = resolve(
            {"config": dict(stage.config), "args": dict(stage.args)}, outputs, stage.name
        )
        fingerprint = _fingerprint(stage, settings)
        done = state["stages"].get(stage.name)
        if done and done.get("status") == "done":
            if done.get("fingerprint") != fingerprint:
                raise RecipeError(
                    str(run_dir / STATE),
                    f"stages.{stage.name}",
                    "finished with other settings than the recipe's now; run it into a new "
                    "folder (--name) to keep both",
                )
            say(f"[{index}/{len(recipe.stages)}] {stage.name}: done before, outputs reused")
            outputs[stage.name] = done["outputs"]
            continue
        say(f"[{index}/{len(recipe.stages)}] {stage.name} ({stage.kind})")
        resolved = Stage(stage.name, stage.kind, settings["config"], settings["args"])
        start = time.perf_counter()
        state["stages"][stage.name] = {"status": "running", "kind": stage.kind}
        write_json_atomic(state_path, state)
        result = KINDS[stage.kind].run(resolved, ctx)
        outputs[stage.name] = result
        state["stages"][stage.name] = {
            "status": "done",
            "kind": stage.kind,
            "fingerprint": fingerprint,
            "seconds": round(time.perf_counter() - start, 3),
            "outputs": result,
        }
        write_json_atomic(state_path, state)
    state["headline"] = headline(recipe, outputs)
    write_json_atomic(state_path, state)
    _note_figures(recipe, outputs)
    return state


def _note_figures(recipe: Recipe, outputs: dict[str, dict[str, Any]]) -> None:
    """Gives every search stage's report the figures the recipe's stages drew."""
    from mixnas.recipes.stages import write_run_recipe

    figures: list[str] = []
    for stage in recipe.stages:
        produced = outputs.get(stage.name, {})
        listed = produced.get("figures", [])
        figures += [str(f) for f in (listed if isinstance(listed, list) else [listed])]
    if not figures:
        return
    for stage in recipe.stages:
        if stage.kind == "search":
            run_dir = Path(outputs[stage.name]["run_dir"])
            write_run_recipe(run_dir, {**recipe.about(), "figures": figures}, stage.name)


def headline(recipe: Recipe, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The metric the paper's method optimises, as its stage reported it (None if absent)."""
    h = recipe.headline
    produced = outputs.get(h.stage, {})
    key = "best_" + "".join(c if c.isalnum() else "_" for c in h.metric)
    value = produced.get(h.metric, produced.get(key))
    return {"stage": h.stage, "metric": h.metric, "direction": h.direction, "value": value}
