"""Strategy overhead: wall time of one ask + tell on a large hybrid space, per strategy.

The evaluation itself is excluded: metrics are analytic costs computed before the timer runs, so
the figure is what the strategy adds to every trial of a search. Population-based strategies run
with a population of 100.

    python bench/strategy_overhead.py --trials 400 --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import strategies
from bench.search_nb201 import write_section
from search_space import load_space, spec_cost
from strategies import Objective

POPULATION = {
    "evolution": {"population_size": 100, "sample_size": 25},
    "nsga2": {"population_size": 100},
    "optuna_nsga2": {"population_size": 100},
    "optuna_nsga3": {"population_size": 100},
}
OBJECTIVES = [Objective("params", "maximize"), Objective("macs", "minimize", "MACs")]


def measure(name: str, space: Any, trials: int, seed: int) -> dict[str, float]:
    strategy = strategies.create(name, space, OBJECTIVES, seed=seed, **POPULATION.get(name, {}))
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        (cand,) = strategy.ask(1)
        ask_time = time.perf_counter() - start
        cost = spec_cost(cand.spec)  # the "evaluation", outside the timer
        start = time.perf_counter()
        strategy.tell([(cand, {"params": cost.params, "macs": cost.macs})])
        times.append(ask_time + time.perf_counter() - start)
    ms = np.array(times) * 1e3
    steady = ms[trials // 2 :]  # after the population is full
    return {
        "median_ms": float(np.median(ms)),
        "steady_median_ms": float(np.median(steady)),
        "p95_ms": float(np.percentile(steady, 95)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid")
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default=",".join(strategies.names()))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    space = load_space(args.space)
    rows = []
    for name in [n for n in args.strategies.split(",") if n]:
        if name == "optuna_gp":  # cubic in the trials; not a per-trial overhead comparison
            continue
        rows.append((name, measure(name, space, args.trials, args.seed)))
        print(f"{name:14} {rows[-1][1]}", flush=True)
    lines = [
        "## Strategy overhead per ask + tell (`bench/strategy_overhead.py`)",
        "",
        f"```\npython bench/strategy_overhead.py {' '.join(sys.argv[1:])}\n```",
        "",
        f"Space `{args.space}` (cardinality {space.cardinality():.2e}), {args.trials} trials, "
        "two objectives (params, MACs from the analytic cost model, computed outside the timer), "
        "population 100 for evolution and NSGA-II. Machine: "
        f"{platform.platform()}, {os.cpu_count()} cores, one BLAS thread. `optuna_gp` is left "
        "out: its cost grows cubically with the trials by design.",
        "",
        "| strategy | median ms (all trials) | median ms (second half) | p95 ms (second half) |",
        "|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['median_ms']:.2f} | {r['steady_median_ms']:.2f} | {r['p95_ms']:.2f} |"
        )
    section = "\n".join(lines) + "\n"
    print(section)
    if args.out:
        write_section(args.out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
