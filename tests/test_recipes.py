"""Recipes: every built-in one runs from the command line at its smoke scale; the runner chains,
resumes and refuses bad recipe files in one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import rankdata

from mixnas.recipes import RECIPES_DIR, RecipeError, builtin, find_recipe, read_recipe
from mixnas.recipes.recipe import parse_recipe, resolve

BUILTIN = [p.stem for p in builtin()]


def _mixnas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixnas", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def test_the_built_in_recipes_are_listed_with_their_papers() -> None:
    assert {"as_vit", "vit_resnas"} <= set(BUILTIN)
    result = _mixnas("recipes")
    assert result.returncode == 0, result.stderr
    for name in BUILTIN:
        recipe = read_recipe(RECIPES_DIR / f"{name}.yaml")
        line = next(row for row in result.stdout.splitlines() if row.startswith(name))
        assert recipe.title in line and recipe.paper in line


_SMOKE_RUNS: dict[str, Path] = {}


def _smoke(name: str, factory: pytest.TempPathFactory) -> Path:
    """The recipe's run folder after `mixnas recipe NAME --smoke` (run once per session)."""
    if name not in _SMOKE_RUNS:
        runs = factory.mktemp(f"recipe-{name}")
        result = _mixnas("recipe", name, "--smoke", "--runs-dir", str(runs), "-q")
        assert result.returncode == 0, result.stdout + result.stderr
        _SMOKE_RUNS[name] = runs / f"recipe-{name}-smoke"
    return _SMOKE_RUNS[name]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_recipe_runs_at_its_smoke_scale(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_dir = _smoke(name, tmp_path_factory)
    state = json.loads((run_dir / "recipe.json").read_text())
    recipe = find_recipe(name)
    assert state["recipe"]["paper"] == recipe.paper
    assert sorted(state["stages"]) == sorted(s.name for s in recipe.stages)
    assert all(s["status"] == "done" for s in state["stages"].values())
    value = state["headline"]["value"]
    assert isinstance(value, int | float) and np.isfinite(value), state["headline"]
    for stage in recipe.stages:
        if stage.kind == "search":  # the report of a recipe's search names the recipe
            report = (run_dir / stage.name / "report.html").read_text()
            assert recipe.title in report and recipe.paper in report


def test_as_vit_picks_the_best_mean_rank_and_scales_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run_dir = _smoke("as_vit", tmp_path_factory)
    outputs = json.loads((run_dir / "recipe.json").read_text())["stages"]
    with (run_dir / "search" / "trials.csv").open() as file:
        rows = [r for r in csv.DictReader(file) if r["status"] == "ok"]
    ntk = np.array([float(r["proxy:ntk_cond"]) for r in rows])
    regions = np.array([float(r["proxy:linear_regions"]) for r in rows])
    votes = rankdata(ntk) + rankdata(regions)
    expected = rows[int(np.argmax(votes))]["trial_id"]
    assert outputs["search"]["outputs"]["best_trial"].endswith(f":{expected}")
    members = outputs["scale"]["outputs"]["members"]
    assert members and all(Path(m).is_file() for m in members)


def test_the_wide_vs_deep_sweep_holds_the_total_heads(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run_dir = _smoke("wide_vs_deep", tmp_path_factory)
    with (run_dir / "summary" / "wide_deep.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(r["depth"]) for r in rows] == [1, 2, 4, 8]
    assert all(int(r["depth"]) * int(r["heads_per_layer"]) == 8 for r in rows)
    report = (run_dir / "search" / "report.html").read_text()
    assert report.count("wide_deep_") >= 3  # the sweep's figures, in the search's report


def test_a_second_run_reuses_finished_stages_and_refuses_changed_ones(tmp_path: Path) -> None:
    recipe_file = tmp_path / "mini.yaml"
    data = yaml.safe_load((RECIPES_DIR / "as_vit.yaml").read_text())
    data["stages"]["search"]["config"]["space"] = str(RECIPES_DIR / "spaces" / "as_vit.yaml")
    recipe_file.write_text(yaml.safe_dump(data, sort_keys=False))
    args = ("recipe", str(recipe_file), "--smoke", "--runs-dir", str(tmp_path / "runs"), "-q")
    assert _mixnas(*args).returncode == 0
    again = _mixnas(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done before, outputs reused") == 2
    data["smoke"]["search"]["config"]["budget"]["trials"] = 5
    recipe_file.write_text(yaml.safe_dump(data, sort_keys=False))
    changed = _mixnas(*args)
    assert changed.returncode == 2
    assert len(changed.stderr.strip().splitlines()) == 1
    assert "stages.search" in changed.stderr and "--name" in changed.stderr


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["recipe"].update(colour="red"), "recipe.colour"),
        (lambda d: d["stages"]["search"].update(kind="magic"), "stages.search.kind"),
        (lambda d: d["recipe"].pop("paper"), "recipe.paper"),
        (lambda d: d["stages"]["search"]["config"].update(name="x"), "stages.search.config.name"),
        (lambda d: d["recipe"]["headline"].update(stage="nowhere"), "recipe.headline.stage"),
        (lambda d: d["smoke"].update(train={"config": {}}), "smoke.train"),
        (lambda d: d["stages"]["search"]["args"].update(best_by=3), "stages.search.args.best_by"),
        (lambda d: d["stages"]["search"]["config"].update(seed="${scale.dir}"), "stages.search"),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_field(edit, field: str, tmp_path: Path) -> None:
    data = yaml.safe_load((RECIPES_DIR / "as_vit.yaml").read_text())
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RecipeError, match=field.replace(".", r"\.")):
        read_recipe(path)
    result = _mixnas("recipe", str(path), "--runs-dir", str(tmp_path), "-q")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and field in lines[0]


def test_an_unknown_recipe_name_lists_the_known_ones() -> None:
    result = _mixnas("recipe", "nope")
    assert result.returncode == 2
    assert "as_vit" in result.stderr and "vit_resnas" in result.stderr


def test_references_take_the_outputs_type_inside_strings_and_lists() -> None:
    outputs = {"a": {"n": 3, "path": "/x/y"}}
    value = {"k": "${a.n}", "s": "at ${a.path}/z", "l": ["${a.path}", 1]}
    assert resolve(value, outputs, "t") == {"k": 3, "s": "at /x/y/z", "l": ["/x/y", 1]}
    with pytest.raises(RecipeError, match=r"\$\{a\.missing\}"):
        resolve("${a.missing}", outputs, "t")


def test_a_stage_may_not_cite_a_later_one() -> None:
    data = yaml.safe_load((RECIPES_DIR / "vit_resnas.yaml").read_text())
    data["stages"]["supernet"]["config"]["data"] = "${search.run_dir}"
    with pytest.raises(RecipeError, match="not an earlier stage"):
        parse_recipe(data, "t.yaml")
