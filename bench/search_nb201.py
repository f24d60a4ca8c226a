"""Search efficiency on NAS-Bench-201: mixnas strategies against Optuna's samplers, side by side.

Objectives: NB201 test accuracy on a dataset (maximised) and latency on a device (minimised),
looked up in the reference tables (`bench/nb201_table.py`). Quality is the hypervolume regret
against the true front of all 15,625 cells, normalised so that the front's ideal point maps to 0
and its nadir to 1/1.1, with reference point (1, 1): ``1 - HV(found) / HV(true front)``
(`strategies.multiobjective.hv_regret`). mixnas strategies search the `NB201Space` through
ask/tell; Optuna's samplers run directly, as their users would run them (a study, six
`suggest_categorical` calls, duplicates counted as queries).

The constrained single-objective variant maximises accuracy subject to latency <= the median
latency of the space on the device, and reports accuracy regret (points) against the true
constrained optimum.

    python bench/search_nb201.py --dataset cifar10 --device raspi4 --budget 100 --seeds 5 --json
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
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.nb201_table import Table, load
from mixnas.report.svg import line_chart

MIXNAS = ("random", "evolution", "nsga2", "local_search", "surrogate")
OPTUNA = ("optuna-tpe", "optuna-tpe-mv", "optuna-nsga2")
TARGET_REGRET = 0.05


# -- runners (top-level so that worker processes can pickle them) ----------------------------------


def run_mixnas(name: str, table: Table, seed: int, budget: int, constrained: bool) -> list[str]:
    import strategies
    from search_space.declare.schema import Constraint
    from search_space.spaces.nb201 import NB201Space, to_arch_str
    from strategies import Objective

    space = _space(NB201Space, table.dataset)
    acc, lat = f"top1_{table.dataset}", f"latency_ms@{table.device}"
    if constrained:
        objectives = [Objective(acc, "maximize", "%")]
        constraints = [Constraint(lat, max=latency_bound(table))]
    else:
        objectives = [Objective(acc, "maximize", "%"), Objective(lat, "minimize", "ms")]
        constraints = []
    strategy = strategies.create(name, space, objectives, seed=seed, constraints=constraints)
    archs: list[str] = []
    while len(archs) < budget:
        batch = strategy.ask(1)
        if not batch:  # the space is exhausted
            break
        arch = to_arch_str(batch[0].spec)
        a, l_ = table.lookup(arch)
        strategy.tell([(batch[0], {acc: a, lat: l_})])
        archs.append(arch)
    return archs


_SPACES: dict[str, Any] = {}


def _space(cls: Any, dataset: str) -> Any:
    # one space object per process, so a strategy's per-space caches are shared across seeds
    if dataset not in _SPACES:
        _SPACES[dataset] = cls(dataset)
    return _SPACES[dataset]


def run_optuna(name: str, table: Table, seed: int, budget: int, constrained: bool) -> list[str]:
    import warnings

    import optuna

    from search_space.spaces.nb201 import OPS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    bound = latency_bound(table)
    if name == "optuna-tpe":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    elif name == "optuna-tpe-mv":
        sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed)
    else:
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    directions = ["maximize"] if constrained else ["maximize", "minimize"]
    study = optuna.create_study(directions=directions, sampler=sampler)
    archs = []
    for _ in range(budget):
        trial = study.ask()
        ops = [trial.suggest_categorical(f"edge{i}", list(OPS)) for i in range(6)]
        arch = f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"
        acc, lat = table.lookup(arch)
        if constrained:  # Optuna 5 reads constraints from the trial (<= 0 is feasible)
            trial.set_constraint("latency", lat - bound)
        study.tell(trial, [acc] if constrained else [acc, lat])
        archs.append(arch)
    return archs


def run_one(
    job: tuple[str, str, str, int, int, bool],
) -> tuple[tuple[str, str, int], list[str], float]:
    name, dataset, device, seed, budget, constrained = job
    table = load(dataset, device)
    runner: Callable[..., list[str]] = run_optuna if name.startswith("optuna-") else run_mixnas
    start = time.perf_counter()
    archs = runner(name, table, seed, budget, constrained)
    return (name, device, seed), archs, time.perf_counter() - start


# -- scoring --------------------------------------------------------------------------------------


def latency_bound(table: Table) -> float:
    return float(np.median(table.latency))


def true_front(table: Table) -> np.ndarray:
    from strategies.multiobjective import pareto_mask

    losses = table.all_losses()
    return losses[pareto_mask(losses)]


def regret_curve(table: Table, archs: list[str], front: np.ndarray) -> np.ndarray:
    """HV regret after each query."""
    from strategies.multiobjective import hv_regret

    losses = table.losses(archs)
    return np.array([hv_regret(losses[: q + 1], front) for q in range(len(archs))])


def constrained_curve(table: Table, archs: list[str]) -> np.ndarray:
    """Accuracy regret (points) of the best feasible cell after each query."""
    bound = latency_bound(table)
    optimum = table.accuracy[table.latency <= bound].max()
    best, out = -np.inf, []
    for arch in archs:
        acc, lat = table.lookup(arch)
        if lat <= bound:
            best = max(best, acc)
        out.append(optimum - best if np.isfinite(best) else np.inf)
    return np.array(out)


def summarise(
    curves: dict[str, list[np.ndarray]], budgets: list[int], target: float | None
) -> list[dict[str, Any]]:
    rows = []
    for name, runs in curves.items():
        row: dict[str, Any] = {"strategy": name, "seeds": len(runs)}
        for b in budgets:
            at = np.array([c[min(b, len(c)) - 1] for c in runs])
            q25, med, q75 = np.percentile(at, [25, 50, 75])
            row[f"median@{b}"], row[f"iqr@{b}"] = float(med), (float(q25), float(q75))
        if target is not None:
            reach = [int(np.argmax(c <= target)) + 1 if (c <= target).any() else None for c in runs]
            hit = sorted(r for r in reach if r is not None)
            row["reached"] = len(hit)
            # the median over seeds of the queries needed (unreached seeds count as infinite)
            row["queries_to_target"] = hit[len(runs) // 2] if len(hit) > len(runs) // 2 else None
        rows.append(row)
    return rows


# -- reporting ------------------------------------------------------------------------------------


def _table(
    rows: list[dict[str, Any]], budgets: list[int], unit: str, target: float | None
) -> list[str]:
    head = "| strategy | " + " | ".join(f"{unit} @{b}: median [IQR]" for b in budgets)
    head += f" | queries to {target} (seeds reaching) |" if target is not None else " |"
    lines = [head, "|---" * (len(budgets) + 1 + (target is not None)) + "|"]
    best = {b: min(r[f"median@{b}"] for r in rows) for b in budgets}
    for r in rows:
        cells = []
        for b in budgets:
            q25, q75 = r[f"iqr@{b}"]
            text = f"{r[f'median@{b}']:.4f} [{q25:.4f}, {q75:.4f}]"
            cells.append(f"**{text}**" if r[f"median@{b}"] == best[b] else text)
        line = f"| {r['strategy']} | " + " | ".join(cells)
        if target is not None:
            q = r["queries_to_target"]
            line += f" | {q if q is not None else '> budget'} ({r['reached']}/{r['seeds']}) |"
        else:
            line += " |"
        lines.append(line)
    return lines


def comparison(results: dict[str, Any], budgets: list[int]) -> list[str]:
    """Best mixnas strategy against Optuna's best sampler, per device and budget."""
    lines = [
        "| device | queries | best mixnas (median regret) | best Optuna (median regret) | ratio |",
        "|---|---|---|---|---|",
    ]
    for device, data in results.items():
        rows = data.get("mo", [])
        for b in budgets:
            ours = [r for r in rows if not r["strategy"].startswith("optuna-")]
            theirs = [r for r in rows if r["strategy"].startswith("optuna-")]
            if not ours or not theirs:
                continue
            a = min(ours, key=lambda r: r[f"median@{b}"])
            o = min(theirs, key=lambda r: r[f"median@{b}"])
            ratio = a[f"median@{b}"] / o[f"median@{b}"] if o[f"median@{b}"] else float("nan")
            lines.append(
                f"| {device} | {b} | {a['strategy']} ({a[f'median@{b}']:.4f}) | "
                f"{o['strategy']} ({o[f'median@{b}']:.4f}) | {ratio:.2f} |"
            )
    return lines


def report(args: argparse.Namespace, results: dict[str, Any], elapsed: float) -> str:
    budgets = args.budget
    lines = [
        "## Search efficiency on NAS-Bench-201 (`bench/search_nb201.py`)",
        "",
        "Command:",
        "",
        f"```\npython bench/search_nb201.py {' '.join(sys.argv[1:])}\n```",
        "",
        f"Machine: {platform.platform()} ({os.cpu_count()} cores), {args.workers} worker "
        f"processes, {elapsed / 60:.1f} minutes in all.",
        "",
        f"Objectives: {args.dataset} test accuracy (NATS-Bench, 200 epochs, mean over seeds; "
        "maximised) and latency on the device (HELP / HW-NAS-Bench tables; minimised). Regret "
        "is `1 - HV(found)/HV(true front)` after normalising both objectives so that the true "
        "front (from all 15,625 cells) has its ideal point at 0 and its nadir at 1/1.1, with "
        "reference point (1, 1). Every query counts, duplicates included for Optuna (mixnas "
        "strategies never repeat a cell). Bold: the best median per budget.",
    ]
    if any("mo" in data for data in results.values()):
        lines += [
            "",
            "### Best mixnas strategy against Optuna's best sampler",
            "",
            *comparison(results, budgets),
        ]
    for device, data in results.items():
        if "mo" in data:
            lines += ["", f"### {args.dataset} x {device}: hypervolume regret", ""]
            lines += _table(data["mo"], budgets, "regret", TARGET_REGRET)
            lines += [
                "",
                f"![regret vs queries on {device}](figures/nb201_{args.dataset}_{device}.svg)",
            ]
        if "constrained" in data:
            lines += [
                "",
                f"### {args.dataset} x {device}: accuracy under latency <= "
                f"{data['bound']:.3f} ms (the space's median), regret in points",
                "",
            ]
            lines += _table(data["constrained"], budgets, "regret", None)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replaces this script's section of a markdown file (or appends it)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    title = section.splitlines()[0]
    if title in text:
        start = text.index(title)
        end = text.find("\n## ", start + len(title))
        rest = text[end + 1 :] if end != -1 else ""
        text = text[:start] + section.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# -- main -----------------------------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--device", type=_csv, default=["fpga", "eyeriss", "raspi4", "pixel3"])
    parser.add_argument(
        "--budget", type=lambda s: [int(b) for b in _csv(s)], default=[50, 100, 300]
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--strategies", type=_csv, default=[*MIXNAS, *OPTUNA])
    parser.add_argument("--mode", choices=("mo", "constrained", "both"), default="mo")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print, per strategy and seed, the cells evaluated in order",
    )
    parser.add_argument("--out", type=Path, help="markdown file whose section to rewrite")
    parser.add_argument("--figures", type=Path, help="folder for regret-vs-queries SVGs")
    args = parser.parse_args(argv)
    budget = max(args.budget)
    modes = ("mo", "constrained") if args.mode == "both" else (args.mode,)
    start = time.perf_counter()
    results: dict[str, Any] = {}
    archs_out: dict[str, Any] = {}
    for mode in modes:
        jobs = [
            (name, args.dataset, device, seed, budget, mode == "constrained")
            for device in args.device
            for name in args.strategies
            for seed in range(args.seeds)
        ]
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            done = list(pool.map(run_one, jobs))
        for device in args.device:
            table = load(args.dataset, device)
            front = true_front(table)
            curves: dict[str, list[np.ndarray]] = {n: [] for n in args.strategies}
            for (name, dev, seed), archs, _ in done:
                if dev != device:
                    continue
                archs_out.setdefault(f"{mode}:{device}", {}).setdefault(name, {})[seed] = archs
                curve = (
                    constrained_curve(table, archs)
                    if mode == "constrained"
                    else regret_curve(table, archs, front)
                )
                curves[name].append(curve)
            target = None if mode == "constrained" else TARGET_REGRET
            data = results.setdefault(device, {"bound": latency_bound(table)})
            data[mode] = summarise(curves, args.budget, target)
            if mode == "mo" and args.figures:
                args.figures.mkdir(parents=True, exist_ok=True)
                series = {
                    n: (
                        list(range(1, budget + 1)),
                        list(np.median(np.stack([c[:budget] for c in cs]), axis=0)),
                    )
                    for n, cs in curves.items()
                    if all(len(c) >= budget for c in cs)
                }
                svg = line_chart(
                    series,
                    title=f"NB201 {args.dataset} x {device}: median HV "
                    f"regret over {args.seeds} seeds",
                    xlabel="queries",
                    ylabel="HV regret",
                    log_y=True,
                )
                (args.figures / f"nb201_{args.dataset}_{device}.svg").write_text(svg)
    elapsed = time.perf_counter() - start
    if args.json:
        print(
            json.dumps(
                {"dataset": args.dataset, "runs": archs_out, "summary": results},
                indent=1,
                default=str,
            )
        )
    else:
        print(report(args, results, elapsed))
    if args.out:
        write_section(args.out, report(args, results, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
