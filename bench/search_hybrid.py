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
for three random specs) while at 600 four random specs spread over 10-34%. The searches run side
by side in the main process, a generation (``--population`` candidates) at a time, and their
trainings go to one pool of ``--workers`` processes; a spec is trained once for all searches
(the strategies of one seed share their random first population).
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
from concurrent.futures import ProcessPoolExecutor
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


def _data_options(job: dict[str, Any]) -> dict[str, Any]:
    # the test split is never read here: not drawing it changes nothing else (own stream)
    return {"difficulty": job["difficulty"], "n_train": job["n_train"], "n_val": job["n_val"],
            "n_test": 0}  # fmt: skip


def _score_key(spec_id: str, job: dict[str, Any]) -> str:
    return json.dumps([spec_id, job["task"], job["steps"], _data_options(job)], sort_keys=True)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def train_once(spec_json: str, job: dict[str, Any]) -> tuple[float | None, float, float]:
    """Short training of one spec (training and data seed 0); runs in a worker process and
    returns (top1 or None when the training failed, params, CPU seconds)."""
    from evaluators import EvalContext, create
    from search_space import ArchSpec, spec_cost

    spec = ArchSpec.from_json(spec_json)
    evaluator = create("train", lr=2e-3, warmup_steps=20, batch_size=64, data_seed=0)
    cpu = time.process_time()
    data = {"name": job["task"], **_data_options(job)}
    context = EvalContext(seed=0, budget={"steps": job["steps"]}, data=data)
    result = evaluator.evaluate(spec, context)
    top1 = result.metrics.get(ACC) if result.status == "ok" else None
    return top1, float(spec_cost(spec).params), time.process_time() - cpu


class ScoreFile:
    """Every training's score, kept in memory and appended to a JSON-lines file once per
    training: strategies whose first population is the same random sample (they share the
    seed) train it once between them, and a killed benchmark loses only the trainings in
    flight."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.scores: dict[str, tuple[float | None, float, float]] = {}
        if path is not None and path.exists():
            for raw in path.read_bytes().splitlines():
                if raw.strip():
                    line = json.loads(raw)
                    self.scores[line["key"]] = (line[ACC], line[PARAMS], line["cpu_s"])

    def add(self, key: str, score: tuple[float | None, float, float]) -> None:
        self.scores[key] = score
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = dict(zip((ACC, PARAMS, "cpu_s"), score, strict=True), key=key)
            with self.path.open("a") as file:
                file.write(json.dumps(line) + "\n")


class Search:
    """One (strategy, seed) search, driven by the main process a generation at a time: it asks
    ``population`` candidates, and tells them (in the order asked) once all are scored. For the
    strategies here that proposes what one-at-a-time ask/tell proposes: random draws the same
    stream, and evolution and NSGA-II change their parents only once per generation."""

    def __init__(self, key: str, job: dict[str, Any]) -> None:
        import strategies
        from search_space import load_space
        from strategies import Objective

        self.key, self.job = key, job
        objectives = [Objective(ACC, "maximize", "%"), Objective(PARAMS, "minimize", "")]
        options = strategy_options(job["strategy"], job["population"])
        space = load_space(job["space"])
        self.strategy = strategies.create(
            job["strategy"], space, objectives, seed=job["seed"], **options
        )
        self.trials: list[dict[str, Any]] = []
        self.batch: list[Any] = []
        self.start = time.perf_counter()

    def ask(self) -> list[Any]:
        """The next generation's candidates ([] when the budget is spent)."""
        left = self.job["trials"] - len(self.trials)
        self.batch = self.strategy.ask(min(self.job["population"], left)) if left > 0 else []
        return self.batch

    def ready(self, scores: dict[str, tuple[float | None, float, float]]) -> bool:
        return all(_score_key(c.spec.id, self.job) in scores for c in self.batch)

    def tell(self, scores: dict[str, tuple[float | None, float, float]]) -> None:
        for candidate in self.batch:
            top1, params, cpu_s = scores[_score_key(candidate.spec.id, self.job)]
            metrics = None if top1 is None else {ACC: top1, PARAMS: params}
            self.strategy.tell([(candidate, metrics)])
            self.trials.append(
                {"spec": candidate.spec.id, ACC: top1, PARAMS: params, "cpu_s": cpu_s}
            )
        self.batch = []

    def result(self) -> dict[str, Any]:
        return {**self.job, "trials": self.trials, "wall_s": time.perf_counter() - self.start}


def run_searches(
    jobs: list[tuple[str, dict[str, Any]]], score_file: ScoreFile, workers: int, on_done: Any
) -> None:
    """Runs every search side by side; each training is submitted to the process pool once
    (a spec two searches ask for at the same time is trained once), so the pool stays busy
    across searches and generations instead of waiting for one search's slowest training."""
    from concurrent.futures import FIRST_COMPLETED, wait

    scores = score_file.scores
    searches = [Search(key, job) for key, job in jobs]
    in_flight: dict[Any, str] = {}  # future -> score key
    submitted: set[str] = set()
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:

        def advance(search: Search) -> None:
            """Tells ready generations and asks the next until one waits for training."""
            while True:
                if not search.batch and not search.ask():
                    on_done(search.key, search.result())
                    searches.remove(search)
                    return
                if not search.ready(scores):
                    break
                search.tell(scores)
            for candidate in search.batch:
                key = _score_key(candidate.spec.id, search.job)
                if key not in scores and key not in submitted:
                    submitted.add(key)
                    future = pool.submit(train_once, candidate.spec.to_json(), search.job)
                    in_flight[future] = key

        for search in list(searches):
            advance(search)
        while in_flight:
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for future in finished:
                score_file.add(in_flight.pop(future), future.result())
            for search in list(searches):
                if search.ready(scores):
                    advance(search)


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
    print(f"{len(done)} searches cached, {len(jobs)} to run", flush=True)
    if jobs:  # generate (or read) the task once here rather than in every worker at once
        from evaluators.data import load_dataset

        example = space.sample(np.random.default_rng(0))
        load_dataset(args.task, example.input, seed=0, **_data_options(jobs[0][1]))

    def finished(key: str, run: dict[str, Any]) -> None:
        done[key] = run
        print(f"{run['strategy']} seed {run['seed']}: {run['wall_s']:.0f} s", flush=True)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(done))

    run_searches(jobs, ScoreFile(scores), args.workers, finished)
    wanted = {_key(_job(args, n, s)) for n in args.strategies for s in range(args.seeds)}
    section = report(args, [r for k, r in done.items() if k in wanted], bound)
    print(section)
    if args.out is not None:
        write_section(args.out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
