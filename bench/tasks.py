"""Do the generated tasks separate token mixers? One fixed macro, every mixer family, every task.

The macro is the same everywhere (`macro_declaration`): a stem, one stage of ``--depth`` blocks of
width ``--width`` whose token mixer is the only thing that changes, an MLP channel mixer (ratio 2),
LayerNorm, a global-average-pooled classifier, and the same training budget (``train`` evaluator:
AdamW, cosine schedule, label smoothing 0.1). Images use a convolutional stem (two stride-2 3x3
convolutions: an 8x8 token grid at 32x32) with learned positions; ListOps uses a token embedding
with learned positions (a 1-D grid of ``seq_len``). same_different is the exception that its
reach needs (docs/tasks.md): one stride-2 convolution (a 16x16 grid), the head's norm before the
pooling, 2,000 steps. Every (task, mixer, seed) trains once; the seed
sets the weights, the batch order and the data sample (``data_seed``), so the spread covers all
three. The reported accuracy is on the task's validation split; CPU seconds are the worker's
process time for that training (one BLAS thread).

The result per task: mean +- sd accuracy per mixer, the rank order, and the two separations the
issue asks for: the best global mixer against the identity mixer and against the best local one,
as the difference of the means in units of the larger of the two seed standard deviations (and
Welch's t-test).

    python bench/tasks.py --seeds 3 --workers 2 --json runs/bench-tasks.json \
        --out docs/benchmarks.md

Rerunning with the same ``--json`` reuses every finished cell (the key holds the whole setting),
so the table can be built up over several sessions or extended with more seeds.
"""

from __future__ import annotations

import os

# one BLAS thread per worker process: the workers already use every core
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section

TITLE = "## Do the tasks separate token mixers? (`bench/tasks.py`)"

GLOBAL, LOCAL, WINDOWED, LARGE, NONE = "global", "local", "windowed", "large kernel", "none"


@dataclass(frozen=True)
class Mixer:
    """One token-mixer family of the benchmark: the op, its parameters and what it can see."""

    op: str
    params: dict[str, Any]
    reach: str


# One representative per family, at the parameters the built-in spaces use. Reach on the 8x8
# grid of a 32x32 image: `local` mixers see a 3x3 neighbourhood per block, `windowed` a 4x4
# window (shifted every other block), `large kernel` a 21x21 dilated neighbourhood (the whole
# grid), `global` every token from the first block on.
MIXERS: dict[str, Mixer] = {
    "attention": Mixer("attention", {"head_dim": 16}, GLOBAL),
    "linear_attention": Mixer("linear_attention", {"head_dim": 16}, GLOBAL),
    "token_mlp": Mixer("token_mlp", {"ratio": 0.5}, GLOBAL),
    "global_filter": Mixer("global_filter", {}, GLOBAL),
    "selective_ssm": Mixer("selective_ssm", {"state": 8, "expand": 1}, GLOBAL),
    "window_attention": Mixer(
        "window_attention", {"window": 4, "head_dim": 16, "shift": True}, WINDOWED
    ),
    "lka": Mixer("lka", {"kernel": 21}, LARGE),
    "dwconv": Mixer("dwconv", {"kernel": 3}, LOCAL),
    "pooling": Mixer("pooling", {"pool_size": 3}, LOCAL),
    "identity": Mixer("identity", {}, NONE),
}


@dataclass(frozen=True)
class TaskSetup:
    """A task of the benchmark: the model's input, the data options and the training budget."""

    input: dict[str, Any]
    data: dict[str, Any]
    steps: int
    lr: float = 2e-3
    stem: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)


# two stride-2 3x3 convolutions (an 8x8 grid at 32x32) with learned positions: a ViT's 4x4 patch
# embedding learned nothing on the generated tasks within the budget (every mixer at chance on
# textured_shapes after 600 steps), and attention needs positions to relate places at all
_IMAGE_STEM = {"name": "conv_stem", "num_convs": 2, "norm": "batchnorm", "pos_embed": "learned"}
_TOKEN_STEM = {"name": "token_embed", "pos_embed": "learned"}

# Difficulty and budget per task are the ones this benchmark was tuned to (docs/tasks.md says
# how): the long-range image task at a setting a CPU can learn in the budget.
TASKS: dict[str, TaskSetup] = {
    "pathfinder": TaskSetup(
        input={"kind": "image", "channels": 1, "resolution": 32, "num_classes": 2},
        data={"name": "pathfinder", "difficulty": "easy"},
        steps=600,
        stem=_IMAGE_STEM,
    ),
    "same_different": TaskSetup(
        input={"kind": "image", "channels": 3, "resolution": 32, "num_classes": 2},
        data={"name": "same_different", "difficulty": "easy", "min_distance": 24},
        steps=2000,
        stem={**_IMAGE_STEM, "num_convs": 1},
        head={"norm_position": "pre_pool"},
    ),
    "textured_shapes": TaskSetup(
        input={"kind": "image", "channels": 3, "resolution": 32, "num_classes": 10},
        data={"name": "textured_shapes", "difficulty": "easy"},
        steps=600,
        stem=_IMAGE_STEM,
    ),
    "listops": TaskSetup(
        input={"kind": "tokens", "seq_len": 128, "vocab_size": 16, "num_classes": 10},
        data={"name": "listops", "difficulty": "easy"},
        steps=600,
        stem=_TOKEN_STEM,
    ),
    "digits": TaskSetup(
        input={"kind": "image", "channels": 1, "resolution": 32, "num_classes": 10},
        data={"name": "digits"},
        steps=300,
        stem=_IMAGE_STEM,
    ),
}


def macro_declaration(task: TaskSetup, mixer: Mixer, depth: int, width: int) -> dict[str, Any]:
    """The one-point space of the fixed macro with ``mixer`` in every block."""
    return {
        "name": f"tasks-{mixer.op}",
        "input": task.input,
        "stem": [task.stem],
        "token_mixers": {mixer.op: mixer.params},
        "channel_mixers": {"mlp": {"ratio": 2.0}},
        "norms": ["layernorm"],
        "stages": [
            {"depth": depth, "width": width, "token_mixers": [mixer.op], "patterns": ["uniform"]}
        ],
        "head": {"name": "classifier", "pool": "gap", "norm": "layernorm", **task.head},
    }


def cell_key(task: str, mixer: str, seed: int, setting: dict[str, Any]) -> str:
    """The cache key of one training: everything that decides its result."""
    blob = json.dumps({"task": task, "mixer": mixer, "seed": seed, **setting}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Trains one (task, mixer, seed); runs in a worker process."""
    import torch

    torch.set_num_threads(1)
    from evaluators import EvalContext, create
    from search_space.declare.loader import space_from_declaration

    task, mixer = TASKS[job["task"]], MIXERS[job["mixer"]]
    decl = macro_declaration(task, mixer, job["depth"], job["width"])
    spec = space_from_declaration(decl, decl["name"]).sample(np.random.default_rng(0))
    evaluator = create("train", lr=task.lr, warmup_steps=50, batch_size=64, data_seed=job["seed"])
    data = {**task.data, "n_train": job["n_train"]} if task.data["name"] != "digits" else "digits"
    cpu = time.process_time()
    result = evaluator.evaluate(
        spec, EvalContext(seed=job["seed"], budget={"steps": job["steps"]}, data=data)
    )
    return {
        **job,
        "status": result.status,
        "top1": result.metrics.get("top1"),
        "train_loss": result.metrics.get("train_loss"),
        "error": result.error,
        "cpu_s": time.process_time() - cpu,
    }


def run_cells(jobs: list[dict[str, Any]], workers: int, cache: dict[str, Any], path: Path | None):
    """Runs the jobs not in ``cache``, saving after each so that a killed run loses one cell."""
    todo = [j for j in jobs if j["key"] not in cache]
    print(f"{len(jobs) - len(todo)} cells cached, {len(todo)} to train", flush=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(train_cell, job) for job in todo]
        for done, future in enumerate(as_completed(futures), 1):
            cell = future.result()
            cache[cell["key"]] = cell
            top1 = "failed" if cell["top1"] is None else f"{cell['top1']:.1f}"
            print(
                f"[{done}/{len(todo)}] {cell['task']:16s} {cell['mixer']:17s} seed {cell['seed']}"
                f": {top1} ({cell['cpu_s']:.0f} CPU-s)",
                flush=True,
            )
            if path is not None:
                path.write_text(json.dumps(cache, indent=1))


# -- summary ------------------------------------------------------------------------------------


def summarise(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task, per mixer: the seeds' accuracies, mean, sd (ddof 1) and CPU seconds."""
    out: dict[str, dict[str, Any]] = {}
    for cell in cells:
        row = out.setdefault(cell["task"], {}).setdefault(
            cell["mixer"], {"top1": [], "cpu_s": 0.0, "failed": 0}
        )
        row["cpu_s"] += cell["cpu_s"]
        if cell["top1"] is None:
            row["failed"] += 1
        else:
            row["top1"].append(cell["top1"])
    for rows in out.values():
        for row in rows.values():
            values = np.asarray(row["top1"], dtype=float)
            row["mean"] = float(values.mean()) if len(values) else float("nan")
            row["sd"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return out


def separation(rows: dict[str, Any], a: str, b: str, resolution: float) -> dict[str, Any]:
    """How far mixer ``a`` is ahead of ``b``: points, in units of the larger seed sd, Welch p.

    ``resolution`` (points per validation example) floors the sd: seeds that agree to the
    example (digits' small validation split) would otherwise make any difference "many sd".
    """
    from scipy.stats import ttest_ind

    x, y = rows[a], rows[b]
    diff = x["mean"] - y["mean"]
    sd = max(x["sd"], y["sd"], resolution)
    spread = max(x["sd"], y["sd"]) >= resolution
    p = float(ttest_ind(x["top1"], y["top1"], equal_var=False).pvalue) if spread else math.nan
    return {"a": a, "b": b, "points": diff, "in_sd": diff / sd, "p": p}


def best_of(rows: dict[str, Any], reach: str) -> str | None:
    names = [m for m in rows if MIXERS[m].reach == reach and not np.isnan(rows[m]["mean"])]
    return max(names, key=lambda m: rows[m]["mean"]) if names else None


def task_verdict(rows: dict[str, Any], resolution: float = 0.0) -> list[dict[str, Any]]:
    """Best global mixer against the identity mixer and against the best local one."""
    best_global = best_of(rows, GLOBAL)
    if best_global is None:
        return []
    rivals = [m for m in ("identity", best_of(rows, LOCAL)) if m is not None and m in rows]
    return [separation(rows, best_global, m, resolution) for m in rivals]


def validation_size(task: str, n_train: int) -> int:
    """Examples in the task's validation split (from the disk cache for generated tasks)."""
    from evaluators.data import load_dataset
    from search_space.declare.loader import space_from_declaration

    setup = TASKS[task]
    decl = macro_declaration(setup, MIXERS["identity"], depth=1, width=16)
    spec = space_from_declaration(decl, "validation_size").sample(np.random.default_rng(0))
    options = {k: v for k, v in setup.data.items() if k != "name"}
    if setup.data["name"] != "digits":
        options["n_train"] = n_train
    return len(load_dataset(setup.data["name"], spec.input, seed=0, **options).y_val)


def _p(p: float) -> str:
    return "n/a (no seed spread)" if math.isnan(p) else f"{p:.3g}"


def report(args: argparse.Namespace, summary: dict[str, Any], elapsed: float) -> str:
    cpu_min = sum(r["cpu_s"] for rows in summary.values() for r in rows.values()) / 60
    lines = [
        TITLE,
        "",
        f"Command: `python bench/tasks.py --tasks {','.join(summary)} --seeds {args.seeds} "
        f"--depth {args.depth} "
        f"--width {args.width} --n-train {args.n_train} --workers {args.workers}`"
        f" ({platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{cpu_min:.0f} CPU-minutes of training in all, {elapsed / 60:.0f} min of this run's wall "
        "clock; cells cached from earlier runs count in the CPU total).",
        "",
        f"Macro: the stem, one stage of {args.depth} blocks of width {args.width}, MLP ratio 2, "
        "LayerNorm, pooled classifier; only the token mixer changes. Validation accuracy (%), "
        f"mean +- sd over seeds {', '.join(map(str, range(args.seeds)))} (weights, batch order and "
        "data sample); CPU-min per training (one thread).",
        "",
    ]
    for task, rows in summary.items():
        setup = TASKS[task]
        opts = {k: v for k, v in setup.data.items() if k != "name"}
        lines += [
            f"### {task} ({args.steps or setup.steps} steps, batch 64, {opts or 'defaults'})",
            "",
            "| rank | mixer | reach | top-1 (%) | per seed | CPU-min |",
            "|---|---|---|---|---|---|",
        ]
        order = sorted(rows, key=lambda m: -rows[m]["mean"] if rows[m]["top1"] else 1e9)
        for rank, mixer in enumerate(order, 1):
            row = rows[mixer]
            seeds = ", ".join(f"{v:.1f}" for v in row["top1"]) + (
                f" ({row['failed']} failed)" if row["failed"] else ""
            )
            sd = "-" if math.isnan(row["sd"]) else f"{row['sd']:.1f}"
            per_run = row["cpu_s"] / 60 / max(1, len(row["top1"]) + row["failed"])
            lines.append(
                f"| {rank} | {mixer} | {MIXERS[mixer].reach} | {row['mean']:.1f} +- "
                f"{sd} | {seeds} | {per_run:.1f} |"
            )
        missing = [m for m in args.mixers if m not in rows]
        if missing:
            lines += ["", f"Not trained on this task (no cached cells): {', '.join(missing)}."]
        lines.append("")
        resolution = 100.0 / validation_size(task, args.n_train)
        for sep in task_verdict(rows, resolution):
            verdict = "separated" if sep["in_sd"] > 2 else "NOT separated"
            lines.append(
                f"- {sep['a']} vs {sep['b']}: {sep['points']:+.1f} points, "
                f"{sep['in_sd']:.1f} x the larger seed sd (floored at one validation example, "
                f"{resolution:.2f} points), Welch p = {_p(sep['p'])}: {verdict} "
                "(criterion: more than 2 sd)"
            )
        lines.append("")
    return "\n".join(lines)


def _csv(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=_csv, default=list(TASKS))
    parser.add_argument("--mixers", type=_csv, default=list(MIXERS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--n-train", type=int, default=16000, help="generated tasks only")
    parser.add_argument("--steps", type=int, default=0, help="every task's budget (0: its own)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--json", type=Path, help="cache of finished cells (read and written)")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: report the cached cells"
    )
    parser.add_argument("--out", type=Path, help="markdown file whose section is replaced")
    args = parser.parse_args(argv)
    for name, known in (("task", TASKS), ("mixer", MIXERS)):
        unknown = [n for n in getattr(args, f"{name}s") if n not in known]
        if unknown:
            parser.error(f"--{name}s: unknown {unknown}; allowed: {list(known)}")

    cache: dict[str, Any] = {}
    if args.json is not None and args.json.exists():
        cache = json.loads(args.json.read_text())
    jobs = []
    for task in args.tasks:
        setup = TASKS[task]
        if args.steps:
            setup = replace(setup, steps=args.steps)
        setting = {"depth": args.depth, "width": args.width, "n_train": args.n_train}
        # a head left at the macro's default stays out of the key: cells cached before the
        # field existed keep their keys
        setting["setup"] = {k: v for k, v in asdict(setup).items() if k != "head" or v}
        for mixer in args.mixers:
            for seed in range(args.seeds):
                key = cell_key(task, mixer, seed, {**setting, "mixer_def": asdict(MIXERS[mixer])})
                jobs.append(
                    {"task": task, "mixer": mixer, "seed": seed, "key": key, "steps": setup.steps,
                     "depth": args.depth, "width": args.width, "n_train": args.n_train}
                )  # fmt: skip
    start = time.perf_counter()
    if not args.report_only:
        run_cells(jobs, args.workers, cache, args.json)
    summary = summarise([cache[j["key"]] for j in jobs if j["key"] in cache])
    section = report(args, summary, time.perf_counter() - start)
    print(section)
    if args.out is not None:
        write_section(args.out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
