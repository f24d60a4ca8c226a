"""Training-free proxies on NAS-Bench-201: correlation with test accuracy and with NASLib's scores.

For the NB201 cells of NAS-Bench-Suite-Zero's subset (`../shared/data/naslib_zc_proxies`), every
proxy is computed by mixnas on the cell's spec, then compared (Spearman, Kendall) with the
NATS-Bench test accuracy (joined by architecture string) and (Spearman) with NASLib's own score
for the same cell. CIFAR-10 is not available offline: data-dependent proxies see scikit-learn's
digits upsampled to 3x32x32 (or synthetic/random data, `--data`), which is reported as such.

    python bench/proxies_nb201.py --dataset cifar10 --batch-size 16 --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.nb201_table import ACC_COLUMNS, ACCURACY, DATA
from bench.search_nb201 import write_section

SUBSET = DATA / "naslib_zc_proxies" / "zc_nasbench201_subset.json"
ZEN = DATA / "naslib_zc_proxies" / "nb201_zen_valacc_full.csv"
# mixnas proxy name -> NASLib's key for the same quantity
NASLIB_NAME = {"macs": "flops"}
# Spearman with val accuracy on this subset, from the data folder's README (NAS-Bench-Suite-Zero)
_PUBLISHED_ROWS = {  # proxy: (cifar10, cifar100, ImageNet16-120)
    "nwot": (0.787, 0.814, 0.795),
    "jacov": (0.766, 0.725, 0.727),
    "synflow": (0.736, 0.762, 0.759),
    "params": (0.738, 0.744, 0.715),
    "macs": (0.711, 0.722, 0.694),
    "snip": (0.608, 0.658, 0.612),
    "grad_norm": (0.607, 0.648, 0.615),
    "fisher": (0.509, 0.555, 0.524),
    "grasp": (0.538, 0.552, 0.514),
    "epe_nas": (0.666, 0.420, 0.103),
    "plain": (-0.258, -0.268, -0.256),
    "zen": (0.355, 0.361, 0.400),
}
PUBLISHED = {
    dataset: {name: row[i] for name, row in _PUBLISHED_ROWS.items()}
    for i, dataset in enumerate(("cifar10", "cifar100", "ImageNet16-120"))
}
VOTE = ("nwot", "synflow", "jacov", "params")


@cache
def _batch(dataset: str, data: str, batch_size: int, seed: int) -> Any:
    from evaluators.data import load_dataset
    from search_space.spaces.nb201 import from_arch_str

    if data == "random":
        return None
    spec = from_arch_str("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", dataset=dataset)
    ds = load_dataset(data, spec.input, seed=seed)
    return ds.x_train[:batch_size], ds.y_train[:batch_size] % spec.input.num_classes


def score_cell(job: tuple[str, str, list[str], str, int, int]) -> tuple[str, dict[str, Any]]:
    arch, dataset, names, data, batch_size, seed = job
    import torch

    from evaluators.proxies import compute_detailed
    from search_space.spaces.nb201 import from_arch_str

    torch.set_num_threads(1)
    spec = from_arch_str(arch, dataset=dataset)
    batch = _batch(dataset, data, batch_size, seed)
    scores = compute_detailed(spec, names, data=batch, seed=seed, batch_size=batch_size)
    return arch, {n: (s.value, s.seconds, s.error) for n, s in scores.items()}


def _cells(dataset: str, limit: int | None) -> pd.DataFrame:
    from search_space.spaces.nb201 import format_arch_str, naslib_ops

    raw = json.loads(SUBSET.read_text())[dataset]
    rows = []
    for key, rec in raw.items():
        row = {"arch": format_arch_str(naslib_ops(key)), "val_accuracy": rec["val_accuracy"]}
        row.update({f"naslib:{k}": v["score"] for k, v in rec.items() if isinstance(v, dict)})
        rows.append(row)
    cells = pd.DataFrame(rows)
    acc = pd.read_csv(ACCURACY)[["ArchitectureString", ACC_COLUMNS[dataset]]]
    cells = cells.merge(
        acc.rename(columns={"ArchitectureString": "arch", ACC_COLUMNS[dataset]: "test_accuracy"}),
        on="arch",
    )
    zen = pd.read_csv(ZEN)[["arch_str", f"{dataset}_zen"]]
    cells = cells.merge(
        zen.rename(columns={"arch_str": "arch", f"{dataset}_zen": "naslib:zen"}),
        on="arch",
        how="left",
    )
    return cells.head(limit) if limit else cells


def _corr(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from scipy.stats import kendalltau, spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    return (float(spearmanr(a[ok], b[ok]).statistic), float(kendalltau(a[ok], b[ok]).statistic))


def main() -> int:
    from evaluators.proxies import names as proxy_names
    from evaluators.proxies.aggregate import LearnedCombination, rank_vote, reliability

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10", choices=list(ACC_COLUMNS))
    parser.add_argument("--cells", type=int, default=None, help="first N cells of the subset")
    parser.add_argument("--proxies", default=",".join(proxy_names()))
    parser.add_argument("--data", default="digits", choices=("digits", "synthetic", "random"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, help="markdown file whose section to replace")
    parser.add_argument("--json", type=Path, help="write every cell's scores and the summary")
    parser.add_argument("--title", default="", help="suffix of the section title (one per run)")
    args = parser.parse_args()
    names = [n for n in args.proxies.split(",") if n]
    cells = _cells(args.dataset, args.cells)
    start = time.perf_counter()
    jobs = [(a, args.dataset, names, args.data, args.batch_size, args.seed) for a in cells.arch]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = dict(pool.map(score_cell, jobs, chunksize=4))
    elapsed = time.perf_counter() - start
    acc = cells.test_accuracy.to_numpy(float)
    scores = {n: np.array([results[a][n][0] for a in cells.arch], dtype=float) for n in names}
    verdict = reliability(scores, acc) if "params" in scores else {}
    lines = [
        "## Training-free proxies on NAS-Bench-201 (`bench/proxies_nb201.py`)" + args.title,
        "",
        f"```\npython bench/proxies_nb201.py {' '.join(sys.argv[1:])}\n```",
        "",
        f"{len(cells)} {args.dataset} cells of NAS-Bench-Suite-Zero's subset; data-dependent "
        f"proxies see `{args.data}` (batch {args.batch_size}, seed {args.seed}), not CIFAR; "
        f"{platform.platform()}, {args.workers} workers, {elapsed / 60:.1f} minutes. Test "
        "accuracy: NATS-Bench (200 epochs, mean of seeds), joined by architecture string. "
        "NS-Zero: the published Spearman with validation accuracy on this subset. Beats params: "
        "the reliability check (`aggregate.reliability`), whether the proxy's Spearman with test "
        "accuracy on these cells exceeds that of the parameter count.",
        "",
        "| proxy | Spearman vs test acc | Kendall vs test acc | NS-Zero Spearman | "
        "Spearman vs NASLib's score | beats params | failed cells | median s/cell |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, dict[str, Any]] = {}
    for n in names:
        rho, tau = _corr(scores[n], acc)
        ref_col = f"naslib:{NASLIB_NAME.get(n, n)}"
        own = _corr(scores[n], cells[ref_col].to_numpy(float))[0] if ref_col in cells else None
        secs = float(np.median([results[a][n][1] for a in cells.arch]))
        failed = int(np.sum(~np.isfinite(scores[n])))
        pub = PUBLISHED.get(args.dataset, {}).get(n)
        beats = "-" if n == "params" or n not in verdict else _yes(verdict[n]["beats_baseline"])
        summary[n] = {
            "spearman": rho,
            "kendall": tau,
            "published": pub,
            "naslib": own,
            "beats_params": beats,
            "failed": failed,
            "median_seconds": secs,
        }
        lines.append(
            f"| {n} | {rho:.3f} | {tau:.3f} | {pub if pub is not None else '-'} | "
            f"{'-' if own is None else f'{own:.3f}'} | {beats} | {failed} | {secs:.3f} |"
        )
    vote_names = [n for n in VOTE if n in scores]
    if vote_names:
        rho, tau = _corr(rank_vote(scores, vote_names), acc)
        base = verdict.get("params", {}).get("spearman", float("nan"))
        summary["rank vote"] = {"proxies": vote_names, "spearman": rho, "kendall": tau}
        lines.append(
            f"| rank vote ({', '.join(vote_names)}) | {rho:.3f} | {tau:.3f} | - | - | "
            f"{_yes(rho > base)} | - | - |"
        )
        rho, tau = _corr(rank_vote(scores), acc)
        summary["rank vote (all)"] = {"spearman": rho, "kendall": tau}
        lines.append(
            f"| rank vote (all) | {rho:.3f} | {tau:.3f} | - | - | {_yes(rho > base)} | - | - |"
        )
        rng = np.random.default_rng(args.seed)
        rhos = []
        k = min(20, len(cells) // 2)
        for _ in range(20):  # fit on k "trained" cells, judge on the rest
            train = rng.choice(len(cells), size=k, replace=False)
            model = LearnedCombination(names).fit(scores, train, acc[train])
            rest = np.setdiff1d(np.arange(len(cells)), train)
            rhos.append(_corr(model.predict(scores)[rest], acc[rest])[0])
        learned = float(np.median(rhos))
        summary["learned combination"] = {"trained": k, "spearman": learned}
        lines.append(
            f"| learned combination ({k} trained cells, median of 20 draws) | "
            f"{learned:.3f} | - | - | - | {_yes(learned > base)} | - | - |"
        )
    section = "\n".join(lines) + "\n"
    print(section)
    if args.out:
        write_section(args.out, section)
    if args.json:
        cells_out = [
            {"arch": a, "test_accuracy": float(t), **{n: results[a][n][0] for n in names}}
            for a, t in zip(cells.arch, acc, strict=True)
        ]
        payload = {"command": " ".join(sys.argv), "summary": summary, "cells": cells_out}
        args.json.write_text(json.dumps(payload, indent=1, default=float))
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


if __name__ == "__main__":
    sys.exit(main())
