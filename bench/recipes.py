"""Every recipe at its CPU scale: wall time, CPU time, the metric each method optimises, and where
it makes sense a random search of equal budget on the same stages.

Each recipe runs with `mixnas recipe NAME` into ``--runs-dir`` (a finished recipe is reused: its
stages are skipped, so the script can be rerun to add recipes or the report). For a recipe whose
method ends in a search (ViT-ResNAS, SimQ-NAS, As-ViT, MatFormer, MPCViT), the baseline is the same
search config (same evaluators, supernet checkpoint, seed and trial budget) with the strategy
replaced by random search, run beside it; both fronts are scored by hypervolume over the search's
objectives from one reference point (the worst value either run saw on each objective, 10%
beyond), and the best value of the recipe's headline search metric is given for both. Recipes
whose method is not a search over the same evaluations compare against their own baseline inside
the recipe (Evol-Q against PTQ, the wide-vs-deep sweep across depths), and the table says so.

    python bench/recipes.py --runs-dir runs/bench-recipes --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section

TITLE = "## Recipes at their CPU scale (`bench/recipes.py`)"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_recipe(name: str, runs_dir: Path, smoke: bool = False) -> dict[str, Any]:
    """Runs (or reuses) one recipe through the command line; returns its recipe.json and times."""
    folder = runs_dir / f"recipe-{name}{'-smoke' if smoke else ''}"
    done = folder / "recipe.json"
    if done.is_file() and "headline" in json.loads(done.read_text()):
        state = json.loads(done.read_text())
        return {**state, "wall_s": state.get("bench_wall_s"), "cpu_s": state.get("bench_cpu_s")}
    cpu, wall = _children_cpu(), time.perf_counter()
    argv = [sys.executable, "-m", "mixnas", "recipe", name, "--runs-dir", str(runs_dir), "-q"]
    argv += ["--smoke"] if smoke else []
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"recipe {name} failed:\n{result.stdout}\n{result.stderr}")
    state = json.loads(done.read_text())
    state["bench_wall_s"] = time.perf_counter() - wall
    state["bench_cpu_s"] = _children_cpu() - cpu
    done.write_text(json.dumps(state, indent=2, sort_keys=True))
    return {**state, "wall_s": state["bench_wall_s"], "cpu_s": state["bench_cpu_s"]}


def finished(recipe_dir: Path) -> bool:
    state = recipe_dir / "recipe.json"
    return state.is_file() and "headline" in json.loads(state.read_text())


def finished_twin(recipe_dir: Path, stage: str) -> bool:
    """Whether the random twin's search ran to its budget (its export is written last)."""
    return (recipe_dir / f"{stage}-random" / "pareto.csv").is_file()


def search_stage(state: dict[str, Any], recipe_dir: Path) -> str | None:
    """The recipe's search stage, when its method is a search (the one to pit random against):
    its only search, unless that search is itself random (a sweep of given points)."""
    searches = [name for name, s in state["stages"].items() if s["kind"] == "search"]
    if len(searches) != 1:
        return None
    config = json.loads((recipe_dir / f"{searches[0]}.json").read_text())
    strategy = config.get("strategy", "nsga2")
    name = strategy.get("name") if isinstance(strategy, dict) else strategy
    return None if name == "random" else searches[0]


def random_twin(recipe_dir: Path, stage: str) -> Path:
    """The stage's search again with random search (same config otherwise); its run folder."""
    config = json.loads((recipe_dir / f"{stage}.json").read_text())
    config["name"] = f"{stage}-random"
    config["strategy"] = {"name": "random"}
    config.pop("initial", None)  # random search proposes nothing first, as it would alone
    path = recipe_dir / f"{stage}-random.json"
    path.write_text(json.dumps(config, indent=2, sort_keys=True))
    run_dir = recipe_dir / f"{stage}-random"
    if not (run_dir / "config.json").is_file():
        argv = [sys.executable, "-m", "mixnas", "search", str(path), "--quiet"]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"random twin of {recipe_dir}:\n{result.stdout}\n{result.stderr}")
    return run_dir


def fronts(runs: list[Path]) -> tuple[list[float], list[float], list[str]]:
    """Hypervolume and best first-objective value of each run, from one shared reference."""
    from mixnas.front import objective_matrix, to_losses
    from mixnas.report.data import RunData
    from strategies.multiobjective import hypervolume

    data = [RunData.load(r) for r in runs]
    objectives = data[0].objectives
    losses = []
    for run in data:
        ok = run.records_of([i for i, s in enumerate(run.trials.status) if s == "ok"])
        matrix = objective_matrix(ok, objectives)
        losses.append(to_losses(matrix, [o.direction for o in objectives]))
    stacked = np.vstack([x for x in losses if len(x)])
    finite = stacked[np.all(np.isfinite(stacked), axis=1)]
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    ref = hi + 0.1 * np.maximum(hi - lo, 1e-12)
    hvs = [hypervolume(x, ref) if len(x) else 0.0 for x in losses]
    first = objectives[0]
    sign = -1.0 if first.direction == "maximize" else 1.0
    best = [float(sign * x[:, 0].min()) if len(x) else float("nan") for x in losses]
    return hvs, best, [f"{o.direction[:3]} {o.metric}" for o in objectives]


def inside(state: dict[str, Any]) -> str:
    """The numbers the recipe's own python stages computed (its in-recipe comparison)."""
    parts = []
    for name, stage in state["stages"].items():
        if stage["kind"] != "python":
            continue
        for key, value in stage["outputs"].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                parts.append(f"{name}.{key} {value:.4g}")
    return "; ".join(parts) or "none"


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        TITLE,
        "",
        f"Command: `python bench/recipes.py --runs-dir {args.runs_dir} --out docs/benchmarks.md`"
        f" ({platform.processor() or platform.machine()}, {os.cpu_count()} cores; each "
        "recipe's processes use one thread). Every recipe as shipped in `recipes/` (its CPU "
        "scale: docs/recipes.md says what is scaled down); CPU-minutes are the recipe's "
        "processes' user + system time.",
        "",
        "| recipe | wall min | CPU min | headline (metric the method optimises) | vs random search "
        "of equal budget |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        h = row["headline"]
        value = h["value"]
        shown = f"{value:.4g}" if isinstance(value, int | float) else str(value)
        lines.append(
            f"| {row['name']} | {row['wall_s'] / 60:.1f} | {row['cpu_s'] / 60:.1f} | "
            f"{h['metric']} = {shown} ({h['direction']}) | {row['versus']} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", help="comma-separated names (default: every built-in one)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench-recipes"))
    parser.add_argument("--no-baseline", action="store_true", help="skip the random twins")
    parser.add_argument("--smoke", action="store_true", help="the recipes' tiny settings (tests)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the table from the finished recipes (and random twins) only; run nothing",
    )
    parser.add_argument("--out", type=Path, help="markdown file whose section is replaced")
    args = parser.parse_args(argv)

    from mixnas.recipes import builtin

    names = args.recipes.split(",") if args.recipes else [p.stem for p in builtin()]
    rows = []
    for name in names:
        recipe_dir = args.runs_dir / f"recipe-{name}{'-smoke' if args.smoke else ''}"
        if args.report_only and not finished(recipe_dir):
            print(f"{name}: not finished in {recipe_dir}; left out", flush=True)
            continue
        state = run_recipe(name, args.runs_dir, args.smoke)
        stage = search_stage(state, recipe_dir)
        versus = "inside the recipe: " + inside(state)
        if stage is not None and args.report_only and not finished_twin(recipe_dir, stage):
            versus += " (its random twin did not finish)"
        elif stage is not None and not args.no_baseline:
            twin = random_twin(recipe_dir, stage)
            (hv, hv_random), (best, best_random), labels = fronts([recipe_dir / stage, twin])
            versus = (
                f"HV {hv:.4g} vs {hv_random:.4g} over ({', '.join(labels)}); best "
                f"{labels[0].split(' ', 1)[1]} {best:.4g} vs {best_random:.4g}"
            )
        rows.append({"name": name, **state, "versus": versus})
        print(f"{name}: {state['headline']} ({state['wall_s'] or 0:.0f} s); {versus}", flush=True)
    section = report(rows, args)
    print(section)
    if args.out is not None:
        write_section(args.out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
