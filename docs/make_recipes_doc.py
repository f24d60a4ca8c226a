"""Writes docs/recipes.md from the recipe files themselves (recipes/*.yaml): each recipe's paper,
method, what it reproduces, what is scaled down, what to change at full scale, and its stages.

Run ``.venv/bin/python docs/make_recipes_doc.py``; a test (tests/test_recipes.py) fails when the
file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).with_name("recipes.md")

INTRO = """# Recipes: the seed papers' search methods

A recipe is one seed paper's search method as a chain of mixnas stages in one YAML file
(`recipes/NAME.yaml`): a supernet, a search, a scaling, a training, or the least Python a method
needs beyond the commands. Every stage runs through its command's own code path, with the config
the recipe wrote into the run folder, so any stage can be rerun or changed by hand.

```bash
mixnas recipes                 # the built-in recipes and their papers (-l: method and stages)
mixnas recipe vit_resnas       # runs into runs/recipe-vit_resnas; again: continues stage by stage
mixnas recipe vit_resnas --smoke   # the tiny settings the tests run (seconds)
mixnas recipe my_recipe.yaml --name try-2
```

The run folder holds one folder per stage, the config each stage read, and `recipe.json`: every
finished stage's outputs and a fingerprint of its settings, and the headline metric (the one the
paper's method optimises). Running again skips finished stages; a finished stage whose settings
changed since is refused in one line (use `--name` for a new folder). The report of a recipe's
search names the recipe and its paper and shows the figures the recipe's stages drew.

## Writing a recipe

```yaml
recipe:
  name: my_method            # lower-case identifier
  title: My method
  paper: "Title (Authors, year)"
  seeds: [000]               # seed documents (../shared/seeds) that carry the abstract
  method: what the paper's method does
  reproduces: what this recipe reproduces of it
  scaled_down: what is smaller than in the paper
  full_scale: what a user changes to run it at full scale
  headline: {stage: search, metric: top1, direction: maximize}
stages:                      # in order; ${STAGE.OUTPUT} cites an earlier stage's output
  supernet: {kind: supernet, config: {space: ${recipe.home}/my_space.yaml, data: digits}}
  search:
    kind: search
    config:
      objectives: [{metric: top1, direction: maximize}, {metric: macs, direction: minimize}]
      evaluators: [{name: supernet, options: {checkpoint: "${supernet.checkpoint}"}}]
smoke:                       # merged into the stages by --smoke
  supernet: {config: {supernet: {steps: 4}}}
```

Stage kinds (`mixnas.recipes.stages`): `supernet` (`mixnas supernet train`; outputs `run_dir`,
`checkpoint`), `search` (`mixnas search`; outputs `run_dir`, `report`, `pareto`, `front_size`,
`trials`, and the best trial by `args.best_by` (a metric, or `{rank_vote: [METRIC:max|min, ...]}`)
as `best_trial`, `best_spec`, `best_<metric>`), `scale` (`mixnas scale`; `args`: `base`, `budget`,
`rule`, `proxy`), `train` (`mixnas train`; `args`: `target`, `pick`, `data`; `config`: the training
recipe), `python` (`args.function: module:function`, called with the stage folder and its config,
returning its outputs). `${recipe.home}` is the recipe file's folder, `${recipe.dir}` the run
folder.

Every built-in recipe runs at its smoke scale in `make test` (tests/test_recipes.py); the
figures each reaches at its CPU scale are in docs/benchmarks.md (`bench/recipes.py`).

## The built-in recipes
"""


def render() -> str:
    from mixnas.recipes import builtin, read_recipe

    parts = [INTRO]
    for path in builtin():
        r = read_recipe(path)
        stages = " -> ".join(f"`{s.name}` ({s.kind})" for s in r.stages)
        h = r.headline
        parts.append(
            f"\n### {r.title} (`mixnas recipe {r.name}`)\n\n"
            f"*{r.paper}*; seed documents {', '.join(r.seeds)}. File: `recipes/{path.name}`.\n\n"
            f"**Method.** {r.method}\n\n"
            f"**What the recipe reproduces.** {r.reproduces}\n\n"
            f"**Scaled down.** {r.scaled_down}\n\n"
            f"**At full scale.** {r.full_scale}\n\n"
            f"Stages: {stages}. Headline: `{h.metric}` of stage `{h.stage}` ({h.direction}).\n"
        )
    return "".join(parts)


def main() -> None:
    OUT.write_text(render())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
