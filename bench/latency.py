"""Latency measurement and prediction: HELP's NAS-Bench-201 devices, and this machine.

``--part help``: the HELP data (`../shared/data/hw_latency_help/`, NB201, 27 device settings).
Per device, predictors trained on 20, 100 and 1000 random cells are scored on 3000 other cells
(Spearman, MAPE, share within +-10%); few-shot transfer adapts to each held-out device from 20 cells
after pretraining on the other 26; HELP's own protocol (its 9 meta-training devices as sources,
10 and 20 target samples, its 6 test devices) is run next to HELP's published Table 3. The noise
floor comes from cells that are structurally identical where it matters (same ops on every path
to the output).

``--part host``: 200 specs sampled from ``hybrid.yaml`` (32x32 input), each measured twice in two
interleaved rounds (the second round against the first is the measurement's repeatability), then
predicted by the op lookup table (plain sum, and corrected on 100 specs), by learned predictors
trained on 100 and by MACs-linear, scored on the other 100. Then a space with a
``latency_ms@host`` bound is sampled and searched through the resolver, and the chosen specs'
measured latency is checked against the bound.

    python bench/latency.py --part help --out docs/benchmarks.md
    python bench/latency.py --part host --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hw_latency_help"
NB201_CSV = DATA / "nb201_latency_ms.csv"
SIZES = (20, 100, 1000)
TEST_CELLS = 3000
LEARNED = ("macs_linear", "ridge", "gbt")
# HELP's split (README of HayeonLee/HELP, NB201 meta-test command) and its Table 3 (10 samples)
HELP_SOURCES = [
    "1080ti_1",
    "1080ti_32",
    "1080ti_256",
    "silver_4114",
    "silver_4210r",
    "samsung_a50",
    "pixel3",
    "essential_ph_1",
    "samsung_s7",
]
HELP_PUBLISHED = {
    "titan_rtx_256": 0.987,
    "gold_6226": 0.989,
    "pixel2": 0.802,
    "raspi4": 0.890,
    "eyeriss": 0.940,
    "fpga": 0.985,
}
HELP_SOURCE_CELLS = 900


def scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Spearman, mean absolute percentage error and share of predictions within +-10%."""
    rel = np.abs(pred - true) / true
    return {
        "spearman": float(spearmanr(pred, true)[0]),
        "mape": float(100 * rel.mean()),
        "within10": float(100 * (rel <= 0.1).mean()),
    }


def _fmt(s: dict[str, float]) -> str:
    return f"{s['spearman']:.3f} / {s['mape']:.1f} / {s['within10']:.0f}"


# -- HELP data ------------------------------------------------------------------------------------


def _load_help() -> tuple[pd.DataFrame, list[Any], list[str]]:
    from search_space.spaces.nb201 import from_arch_str

    df = pd.read_csv(NB201_CSV)
    devices = [c for c in df.columns if c not in ("nb201_index", "arch_str")]
    return df, [from_arch_str(a) for a in df.arch_str], devices


def isomorphic_key(arch: str) -> tuple[Any, ...] | None:
    """A key shared by the two cells that compute the same graph with nodes 1 and 2 swapped.

    When the edge 2<-1 is ``none``, nodes 1 and 2 both read only the input, so the cell with
    (1<-0, 3<-1) exchanged for (2<-0, 3<-2) runs exactly the same ops on the same shapes, in
    another order: every device does the same work, and any difference is measurement noise.
    Other cells get None.
    """
    from search_space.spaces.nb201 import parse_arch_str

    ops = parse_arch_str(arch)
    if ops[2] != "none":
        return None
    first, second = (ops[0], ops[4]), (ops[1], ops[5])
    return (min(first, second), max(first, second), ops[3])


def isomorphic_pairs(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the isomorphic pairs (cells whose swap is themselves are left out)."""
    keys = df.arch_str.map(isomorphic_key)
    rows = df.index[keys.notna()]
    groups = pd.Series(rows, index=rows).groupby(keys[rows].astype(str))
    pairs = [g.to_numpy() for _, g in groups if len(g) == 2]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def hardware(device: str) -> tuple[str, int]:
    """HELP's setting name as (device, batch size): ``titan_rtx_256`` -> (``titan_rtx``, 256);
    CPU names end in digits too (``gold_6226``), so library names are taken whole."""
    from predictors.roofline import DEVICES

    if device in DEVICES:
        return device, 1
    base, _, suffix = device.rpartition("_")
    return (base, int(suffix)) if base and suffix.isdigit() else (device, 1)


def _predict(
    name: str, train: list[Any], y: np.ndarray, test: list[Any], device: str
) -> np.ndarray:
    import predictors

    if name == "roofline":
        hw, batch = hardware(device)
        model = predictors.create("roofline", device=hw, batch_size=batch)
    else:
        model = predictors.create(name, seed=0)
    return model.fit(train, y).predict(test)


def part_help(seed: int) -> list[str]:
    import predictors
    from predictors.roofline import DEVICES

    start = time.perf_counter()
    df, specs, devices = _load_help()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(specs))
    test = order[-TEST_CELLS:]
    test_specs = [specs[i] for i in test]
    lines = [
        "## Latency predictors on HELP's NAS-Bench-201 devices (`bench/latency.py --part help`)",
        "",
        f"```\npython bench/latency.py --part help --seed {seed}\n```",
        "",
        f"{len(specs)} NB201 cells, {len(devices)} device settings (HELP data, "
        "`../shared/data/hw_latency_help`; GPU suffix = batch size; pixel2, essential_ph_1, "
        "samsung_* are integer ms). Training cells are random, scored on "
        f"{TEST_CELLS} other cells. Each cell reads `Spearman / MAPE % / share within +-10% "
        "(%)`. `roofline` is the device model calibrated on the same training cells (devices "
        "of its library only).",
        "",
    ]
    summary: dict[tuple[str, int], list[float]] = {}
    for n in SIZES:
        train = order[:n]
        train_specs = [specs[i] for i in train]
        names = [*LEARNED, "roofline"]
        lines += [
            f"**{n} training cells per device**",
            "",
            "| device | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for device in devices:
            y = df[device].to_numpy(float)
            row = [device]
            for name in names:
                if name == "roofline" and hardware(device)[0] not in DEVICES:
                    row.append("–")
                    continue
                s = scores(_predict(name, train_specs, y[train], test_specs, device), y[test])
                summary.setdefault((name, n), []).append(s["spearman"])
                row.append(_fmt(s))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += [
        "Mean Spearman over devices (roofline: over the devices of its library whose "
        "calibrated predictions are not constant): "
        + "; ".join(
            f"{name} n={n}: {np.nanmean(v):.3f}" for (name, n), v in sorted(summary.items())
        ),
        "",
    ]
    lines += _transfer_tables(df, specs, devices, order, test, seed)
    lines += _noise_table(df, devices)
    lines.append(
        f"{platform.platform()}; {(time.perf_counter() - start) / 60:.1f} minutes "
        f"(predictors: {', '.join(predictors.names())})."
    )
    return lines


def _transfer(
    sources: Sequence[str],
    target: str,
    df: pd.DataFrame,
    specs: list[Any],
    pre: np.ndarray,
    few: np.ndarray,
    test: np.ndarray,
) -> dict[str, float]:
    from predictors.transfer import FewShotTransfer

    model = FewShotTransfer(seed=0, device=target)
    model.pretrain([specs[i] for i in pre], {d: df[d].to_numpy(float)[pre] for d in sources})
    y = df[target].to_numpy(float)
    model.fit([specs[i] for i in few], y[few])
    return scores(model.predict([specs[i] for i in test]), y[test])


def _transfer_tables(
    df: pd.DataFrame,
    specs: list[Any],
    devices: list[str],
    order: np.ndarray,
    test: np.ndarray,
    seed: int,
) -> list[str]:
    pre, few = order[1000:1900], order[:20]
    lines = [
        "**Few-shot transfer (`transfer`): 20 cells of the held-out device; the other 26 "
        f"settings as sources ({len(pre)} cells each)**, next to `gbt` trained on the same 20 "
        "cells alone",
        "",
        "| held-out device | transfer | gbt, 20 cells |",
        "|---|---|---|",
    ]
    rhos = []
    for target in devices:
        s = _transfer([d for d in devices if d != target], target, df, specs, pre, few, test)
        y = df[target].to_numpy(float)
        alone = scores(
            _predict("gbt", [specs[i] for i in few], y[few], [specs[i] for i in test], target),
            y[test],
        )
        rhos.append(s["spearman"])
        lines.append(f"| {target} | {_fmt(s)} | {_fmt(alone)} |")
    lines += ["", f"Mean Spearman of transfer over the {len(devices)} held-out devices: "
              f"**{np.mean(rhos):.3f}** (min {np.min(rhos):.3f}).", ""]  # fmt: skip
    # HELP's own protocol: its 9 meta-training devices, its 6 test devices
    rng = np.random.default_rng(seed + 1)
    lines += [
        "**HELP's protocol**: sources are HELP's 9 meta-training devices "
        f"({HELP_SOURCE_CELLS} cells each), targets its 6 meta-test devices, scored on every "
        "other cell; HELP's published Spearman (Table 3 of the paper and the repository "
        "README, 10 target samples) alongside. Mean over 5 draws of the target samples.",
        "",
        "| device | HELP (10 samples) | transfer, 10 | transfer, 20 |",
        "|---|---|---|---|",
    ]
    means = {10: [], 20: []}  # type: dict[int, list[float]]
    for target, published in HELP_PUBLISHED.items():
        row = [target, f"{published:.3f}"]
        for k in (10, 20):
            rho = []
            for _ in range(5):
                perm = rng.permutation(len(specs))
                pre_h, few_h, rest = perm[:HELP_SOURCE_CELLS], perm[-k:], perm[HELP_SOURCE_CELLS:-k]
                rho.append(
                    _transfer(HELP_SOURCES, target, df, specs, pre_h, few_h, rest)["spearman"]
                )
            means[k].append(float(np.mean(rho)))
            row.append(f"{np.mean(rho):.3f} ± {np.std(rho):.3f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        f"| **mean** | {np.mean(list(HELP_PUBLISHED.values())):.3f} | "
        f"{np.mean(means[10]):.3f} | {np.mean(means[20]):.3f} |",
        "",
    ]
    return lines


def _noise_table(df: pd.DataFrame, devices: list[str]) -> list[str]:
    first, second = isomorphic_pairs(df)
    lines = [
        f"**Noise floor**: {len(first)} pairs of isomorphic cells (edge 2<-1 is `none`, so "
        "swapping nodes 1 and 2 gives the same graph: the same ops on the same shapes). The "
        "second cell of a pair, taken as a prediction of the first, is the best any predictor "
        "can do on that device; the deterministic estimators (eyeriss, fpga) agree to 0.0% MAPE, "
        "which checks the pairing.",
        "",
        "| device | Spearman / MAPE / +-10% within pairs |",
        "|---|---|",
    ]
    for device in devices:
        y = df[device].to_numpy(float)
        lines.append(f"| {device} | {_fmt(scores(y[second], y[first]))} |")
    return [*lines, ""]


# -- host -----------------------------------------------------------------------------------------


def _load_average() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def part_host(n_specs: int, seed: int, cache: Path, statistic: str) -> list[str]:
    import evaluators
    import predictors
    from search_space import load_space

    start = time.perf_counter()
    load_before = _load_average()
    space = load_space("hybrid")
    rng = np.random.default_rng(seed)
    specs = [space.sample(rng) for _ in range(n_specs)]
    options = {"threads": 1, "warmup": 3, "repeats": 15, "dtype": "auto", "statistic": statistic}
    evaluator = evaluators.create("latency", **options)
    rounds = []
    for _ in range(2):  # interleaved rounds: load changes hit both rounds alike
        metrics = [evaluator.evaluate(s).metrics for s in specs]
        rounds.append(
            {k: np.array([m[f"latency_{k}_ms"] for m in metrics]) for k in ("median", "min")}
        )
    y = rounds[0][statistic]
    noisy = sum(evaluator.evaluate(s).metrics["latency_noisy"] for s in specs[:20])
    measure_s = time.perf_counter() - start
    train, test = list(range(n_specs // 2)), list(range(n_specs // 2, n_specs))
    tr, te = [specs[i] for i in train], [specs[i] for i in test]
    results: dict[str, dict[str, float]] = {
        f"repeatability of the {k} (round 2 vs round 1)": scores(
            rounds[1][k][test], rounds[0][k][test]
        )
        for k in ("median", "min")
    }
    t = time.perf_counter()
    table_options = {"threads": 1, "dtype": "auto", "statistic": statistic}
    lut = predictors.create("lut", cache_dir=cache, **table_options)
    lut.ensure(specs)
    first_measured = lut.measured
    lut_again = predictors.create("lut", cache_dir=cache, **table_options)
    lut_again.ensure(specs)
    profile_s = time.perf_counter() - t
    results["lut, plain sum"] = scores(lut.predict(te), y[test])
    results[f"lut, corrected on {len(tr)}"] = scores(lut.fit(tr, y[train]).predict(te), y[test])
    for name in ("macs_linear", "ridge", "gbt", "mlp"):
        model = predictors.create(name, seed=seed).fit(tr, y[train])
        results[f"{name}, trained on {len(tr)}"] = scores(model.predict(te), y[test])
    lines = [
        "## Latency on the host (`bench/latency.py --part host`)",
        "",
        f"```\npython bench/latency.py --part host --specs {n_specs} --seed {seed} "
        f"--statistic {statistic}\n```",
        "",
        f"{n_specs} specs sampled from `hybrid.yaml` (32x32 input, its analytic constraints), "
        f"measured by the `latency` evaluator ({options}, batch 1) in two interleaved rounds; "
        f"targets are round 1's {statistic}; scores on the last {len(te)} specs; trained "
        f"predictors see the first {len(tr)}. Measured: median {np.median(y):.2f} ms, range "
        f"{y.min():.2f}-{y.max():.2f} ms (the per-spec medians: median "
        f"{np.median(rounds[0]['median']):.2f} ms). Each cell reads `Spearman / MAPE % / "
        "share within +-10% (%)`.",
        "",
        "| predictor | Spearman | MAPE % | within +-10% |",
        "|---|---|---|---|",
    ]
    for name, s in results.items():
        lines.append(f"| {name} | {s['spearman']:.3f} | {s['mape']:.1f} | {s['within10']:.0f} |")
    lines += [
        "",
        f"Lookup table: {len(lut.table)} op signatures in `{cache}`; this run profiled "
        f"{first_measured} (the rest were cached by earlier runs), a second predictor on the same "
        f"table profiled {lut_again.measured}. Measuring took {measure_s / 60:.1f} min, profiling "
        f"{profile_s / 60:.1f} min. {noisy:.0f} of 20 re-measured specs stayed flagged noisy "
        "(relative IQR > 10% after two re-measurements).",
        "",
    ]
    lines += _constraint_check(space, specs, y, cache, seed, evaluator, statistic)
    lines.append(
        f"{platform.platform()}, {os.cpu_count()} cores; "
        f"load average (1, 5, 15 min) {load_before} at the start, {_load_average()} at the end; "
        f"{(time.perf_counter() - start) / 60:.1f} minutes in all."
    )
    return lines


def _constraint_check(
    space: Any,
    specs: list[Any],
    y: np.ndarray,
    cache: Path,
    seed: int,
    evaluator: Any,
    statistic: str,
) -> list[str]:
    import strategies
    from predictors.resolve import LatencyResolver
    from search_space import spec_cost
    from search_space.declare.schema import Constraint

    bound = float(np.percentile(y, 30))
    space.constraints = (*space.constraints, Constraint("latency_ms@host", max=bound))
    resolver = LatencyResolver(cache_dir=cache, calibration=20, seed=seed, statistic=statistic)
    constrained = resolver.constrain(space)
    rng = np.random.default_rng(seed + 7)
    sampled = [constrained.sample(rng) for _ in range(20)]
    # a search pushed towards larger models: only the latency bound holds it back
    strategy = strategies.create(
        "evolution", constrained, [("params", "maximize")], seed=seed, population_size=10
    )
    chosen = []
    for _ in range(4):
        asked = strategy.ask(5)
        strategy.tell([(c, {"params": float(spec_cost(c.spec).params)}) for c in asked])
        chosen += [c.spec for c in asked]
    lines = [
        f"**Latency constraint**: `latency_ms@host <= {bound:.2f}` (the 30th percentile of the "
        "measured specs) added to the space and resolved by `LatencyResolver` (lookup table "
        "corrected on 20 measured specs of the space; the bound is checked on the 90% quantile "
        "of the prediction); 20 constrained samples and 20 "
        "candidates of an evolution search that maximises params, each then measured:",
        "",
        "| draws | meet the bound when measured | measured / bound: median, max |",
        "|---|---|---|",
    ]
    for label, group in (("constrained sampling", sampled), ("evolution search", chosen)):
        measured = np.array([evaluator.evaluate(s).metrics["latency_ms"] for s in group])
        ratio = measured / bound
        lines.append(
            f"| {label} | {100 * (ratio <= 1).mean():.0f}% ({len(group)}) | "
            f"{np.median(ratio):.2f}, {ratio.max():.2f} |"
        )
    unconstrained = 100 * (y <= bound).mean()
    lines += ["", f"Without the constraint, {unconstrained:.0f}% of samples meet it.", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("help", "host", "all"), default="all")
    parser.add_argument("--specs", type=int, default=200, help="host specs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache", type=Path, default=Path("runs/bench_latency"), help="lookup-table directory"
    )
    parser.add_argument(
        "--statistic",
        choices=("median", "min"),
        default="min",
        help="host: the headline of a measurement (min repeats better on a shared machine)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sections = []
    if args.part in ("help", "all"):
        sections.append(part_help(args.seed))
    if args.part in ("host", "all"):
        sections.append(part_host(args.specs, args.seed, args.cache, args.statistic))
    for lines in sections:
        text = "\n".join(lines).rstrip() + "\n"
        print(text)
        if args.out:
            write_section(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
