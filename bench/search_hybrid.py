"""Does searching the hybrid space beat not searching it? Strategies vs random with short training.

Each (strategy, seed) is one search of ``--space`` (default `hybrid_cpu`, whose input fits
``textured_shapes`` as it is) through ask/tell: ``--trials`` candidates, each trained with the
``train`` evaluator for ``--steps`` steps on a generated task, trading validation accuracy
(maximised) against parameters (minimised). The objective is deterministic: every candidate is
trained with training seed 0 and data seed 0, so two strategies that propose the same spec get
the same score (common random numbers; a spec trained once is cached per worker and in the
``--json`` file), and the strategies differ only by what they propose.

Quality is the hypervolume of each search's front in (100 - top1, params / 1e5), reference point
(100, params bound of the space / 1e5), after every trial; the table gives the median over seeds
at a few budgets, and the paired comparison against random search at the full budget: per seed,
the strategy's hypervolume minus random's with the same seed (Wilcoxon signed-rank and paired
t-test over seeds). Seeds pair the strategies' RNGs only; the objective is the same function for
all of them.

    python bench/search_hybrid.py --strategies random,nsga2 --seeds 5 --trials 30 \
        --population 8 --steps 600 --workers 1 --json runs/bench-search-hybrid.json \
        --out docs/benchmarks.md

600 steps because at 200 a hybrid_cpu model is still near chance on textured_shapes (10-14%
for three random specs) while at 600 four random specs spread over 10-34%; one worker because
the strategies of one seed share their random first population (trained once, read from the
score file by the next strategy of that seed).
"""

from __future__ import annotations

import os

# one BLAS thread per worker process: the workers already use every core
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section

TITLE = "## Searching the hybrid space vs not searching it (`bench/search_hybrid.py`)"
STRATEGIES = ("random", "evolution", "nsga2", "surrogate")


def strategy_options(name: str, population: int) -> dict[str, Any]:
    """Options sized for a budget of a few dozen trials (the defaults suit hundreds): the first
    ``population`` trials are random for every strategy, then each uses what it learned."""
    return {
        "evolution": {"population_size": population, "sample_size": max(2, population // 3)},
        "nsga2": {"population_size": population},
        "surrogate": {"num_init": population, "refit_every": max(1, population // 2)},
    }.get(name, {})


ACC, PARAMS = "top1", "params"

# (spec id, task, steps, data options) -> (top1, params, CPU s), per worker process
_SCORES: dict[str, tuple[float | None, float, float]] = {}
# bytes of the shared score file already read into _SCORES by this process
_SCORES_READ = {"offset": 0}


def _read_scores(path: Path | None) -> None:
    """Adds the lines other workers (or earlier runs) appended to the shared score file."""
    if path is None or not path.exists():
        return
    with path.open("rb") as file:
        file.seek(_SCORES_READ["offset"])
        for raw in file:
            if not raw.endswith(b"\n"):
                break  # a line still being written: read it next time
            _SCORES_READ["offset"] += len(raw)
            line = json.loads(raw)
            _SCORES[line["key"]] = (line[ACC], line[PARAMS], line["cpu_s"])


def _score(
    spec: Any, task: str, steps: int, data: dict[str, Any], scores: Path | None = None
) -> tuple[float | None, float, float]:
    """Short training of ``spec`` (training and data seed 0), memoised per worker process and in
    the shared ``scores`` file (JSON lines, appended once per training): strategies whose first
    population is the same random sample (they share the seed) train it once between them, and a
    killed benchmark loses at most the trainings in flight."""
    key = json.dumps([spec.id, task, steps, data], sort_keys=True)
    if key not in _SCORES:
        _read_scores(scores)
    if key in _SCORES:
        return _SCORES[key]
    from evaluators import EvalContext, create
    from search_space import spec_cost

    evaluator = create("train", lr=2e-3, warmup_steps=20, batch_size=64, data_seed=0)
    cpu = time.process_time()
    result = evaluator.evaluate(
        spec, EvalContext(seed=0, budget={"steps": steps}, data={"name": task, **data})
    )
    top1 = result.metrics.get(ACC) if result.status == "ok" else None
    _SCORES[key] = (top1, float(spec_cost(spec).params), time.process_time() - cpu)
    if scores is not None:
        line = dict(zip((ACC, PARAMS, "cpu_s"), _SCORES[key], strict=True), key=key)
        # one short line in append mode: concurrent workers' lines do not interleave
        with scores.open("a") as file:
            file.write(json.dumps(line) + "\n")
    return _SCORES[key]


def run_search(job: dict[str, Any], scores: Path | None = None) -> dict[str, Any]:
    """One search: ``trials`` ask/tell rounds; runs in a worker process."""
    import torch

    torch.set_num_threads(1)
    import strategies
    from search_space import load_space
    from strategies import Objective

    space = load_space(job["space"])
    objectives = [Objective(ACC, "maximize", "%"), Objective(PARAMS, "minimize", "")]
    options = strategy_options(job["strategy"], job["population"])
    strategy = strategies.create(job["strategy"], space, objectives, seed=job["seed"], **options)
    trials: list[dict[str, Any]] = []
    start = time.perf_counter()
    while len(trials) < job["trials"]:
        asked = strategy.ask(1)
        if not asked:
            break
        candidate = asked[0]
        # the test split is never read here: not drawing it changes nothing else (own stream)
        data = {"difficulty": job["difficulty"], "n_train": job["n_train"], "n_val": job["n_val"],
                "n_test": 0}  # fmt: skip
        top1, params, cpu_s = _score(candidate.spec, job["task"], job["steps"], data, scores)
        metrics = None if top1 is None else {ACC: top1, PARAMS: params}
        strategy.tell([(candidate, metrics)])
        trials.append({"spec": candidate.spec.id, ACC: top1, PARAMS: params, "cpu_s": cpu_s})
    return {**job, "trials": trials, "wall_s": time.perf_counter() - start}


# -- scoring --------------------------------------------------------------------------------------


def hypervolume_curve(trials: list[dict[str, Any]], params_bound: float) -> np.ndarray:
    """Hypervolume of the front found after each trial (failed trials add nothing)."""
    from strategies.multiobjective import hypervolume

    ref = np.array([100.0, params_bound / 1e5])
    points: list[list[float]] = []
    curve = []
    for trial in trials:
        if trial[ACC] is not None:
            points.append([100.0 - trial[ACC], trial[PARAMS] / 1e5])
        curve.append(hypervolume(np.array(points), ref) if points else 0.0)
    return np.array(curve)


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired comparison of per-seed values: mean difference, wins, Wilcoxon and t-test p."""
    from scipy.stats import ttest_rel, wilcoxon

    diff = a - b
    nonzero = diff[diff != 0]
    return {
        "mean_diff": float(diff.mean()),
        "wins": int((diff > 0).sum()),
        "n": len(diff),
        "wilcoxon_p": float(wilcoxon(nonzero).pvalue) if len(nonzero) else 1.0,
        "t_p": float(ttest_rel(a, b).pvalue) if len(diff) > 1 and diff.std() > 0 else 1.0,
    }


def report(args: argparse.Namespace, runs: list[dict[str, Any]], bound: float) -> str:
    curves: dict[str, dict[int, np.ndarray]] = {}
    for run in runs:
        curves.setdefault(run["strategy"], {})[run["seed"]] = hypervolume_curve(
            run["trials"], bound
        )
    seeds = sorted(set.intersection(*(set(c) for c in curves.values())))
    budgets = sorted({max(1, args.trials // 4), args.trials // 2, args.trials})
    trainings = {t["spec"]: t["cpu_s"] for run in runs for t in run["trials"]}
    cpu_min = sum(trainings.values()) / 60
    mean_cpu = float(np.mean(list(trainings.values())))
    lines = [
        TITLE,
        "",
        f"Command: `python bench/search_hybrid.py --space {args.space} --task {args.task} "
        f"--difficulty {args.difficulty} --n-train {args.n_train} --n-val {args.n_val} "
        f"--seeds {args.seeds} --trials {args.trials} --steps {args.steps} --population "
        f"{args.population} --workers {args.workers}` "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores). "
        f"{len(trainings)} distinct specs trained ({mean_cpu:.1f} CPU-s each on average, "
        f"{cpu_min:.0f} CPU-minutes in all); {len(runs)} searches.",
        "",
        f"Objectives: validation top-1 on `{args.task}` after {args.steps} steps (batch 64, "
        "training and data seed 0 for every spec: one deterministic function for every strategy) "
        f"and parameters. Hypervolume of the front in (100 - top1, params / 1e5) with reference "
        f"({100}, {bound / 1e5:g}); median [min, max] over seeds {seeds[0]}..{seeds[-1]}.",
        "",
        "| strategy | " + " | ".join(f"HV after {b} trials" for b in budgets) + " | best top-1 |",
        "|---|" + "---|" * (len(budgets) + 1),
    ]
    best: dict[str, float] = {}
    for name in curves:
        cells = []
        for b in budgets:
            values = np.array([curves[name][s][min(b, len(curves[name][s])) - 1] for s in seeds])
            cells.append(f"{np.median(values):.1f} [{values.min():.1f}, {values.max():.1f}]")
        tops = [
            max((t[ACC] for t in run["trials"] if t[ACC] is not None), default=float("nan"))
            for run in runs
            if run["strategy"] == name and run["seed"] in seeds
        ]
        best[name] = float(np.median(tops))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {best[name]:.1f} |")
    lines += ["", f"Paired against random search at {args.trials} trials (same seeds):", ""]
    if "random" in curves:
        base = np.array([curves["random"][s][-1] for s in seeds])
        for name in curves:
            if name == "random":
                continue
            ours = np.array([curves[name][s][-1] for s in seeds])
            cmp = paired(ours, base)
            lines.append(
                f"- {name}: {cmp['mean_diff']:+.2f} hypervolume on average, ahead on "
                f"{cmp['wins']} of {cmp['n']} seeds, Wilcoxon p = {cmp['wilcoxon_p']:.3g}, "
                f"paired t-test p = {cmp['t_p']:.3g}"
            )
    lines.append("")
    return "\n".join(lines)


def _job(args: argparse.Namespace, strategy: str, seed: int) -> dict[str, Any]:
    keys = ("space", "task", "difficulty", "n_train", "n_val", "trials", "steps", "population")
    return {"strategy": strategy, "seed": seed, **{k: getattr(args, k) for k in keys}}


def _key(job: dict[str, Any]) -> str:
    return json.dumps(job, sort_keys=True)


def _csv(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid_cpu")
    parser.add_argument("--task", default="textured_shapes")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--n-train", type=int, default=16000)
    parser.add_argument("--n-val", type=int, default=2000)
    parser.add_argument("--strategies", type=_csv, default=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--population", type=int, default=10, help="see strategy_options")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--json", type=Path, help="finished searches (read and written)")
    parser.add_argument(
        "--scores",
        type=Path,
        help="every training's score, shared by the workers and kept across runs (JSON lines; "
        "default: beside --json)",
    )
    parser.add_argument("--out", type=Path, help="markdown file whose section is replaced")
    args = parser.parse_args(argv)

    from search_space import load_space

    space = load_space(args.space)
    bound = next((c.max for c in space.constraints if c.metric == PARAMS and c.max), None)
    bound = float(bound) if bound else 1e7
    done: dict[str, Any] = {}
    if args.json is not None and args.json.exists():
        done = json.loads(args.json.read_text())
    jobs = []
    for name in args.strategies:
        for seed in range(args.seeds):
            job = _job(args, name, seed)
            key = _key(job)
            if key not in done:
                jobs.append((key, job))
    scores = args.scores
    if scores is None and args.json is not None:
        scores = args.json.with_suffix(".scores.jsonl")
    # seed s of every strategy before seed s + 1: with one seed's searches side by side, the
    # random first population they share is trained once and read from the score file
    jobs.sort(key=lambda item: item[1]["seed"])
    print(f"{len(done)} searches cached, {len(jobs)} to run", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(run_search, job, scores): key for key, job in jobs}
        for future in as_completed(futures):
            run = future.result()
            done[futures[future]] = run
            print(f"{run['strategy']} seed {run['seed']}: {run['wall_s']:.0f} s", flush=True)
            if args.json is not None:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(done))
    wanted = {_key(_job(args, n, s)) for n in args.strategies for s in range(args.seeds)}
    section = report(args, [r for k, r in done.items() if k in wanted], bound)
    print(section)
    if args.out is not None:
        write_section(args.out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
