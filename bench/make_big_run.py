"""A synthetic run folder of N finished trials, for timing what reads runs at scale.

The folder looks like one a cheap search (analytic costs only) leaves behind: ``config.json`` and
``manifest.json`` as `mixnas.driver.start_run` writes them, and a `RunStore` database whose rows
hold real hybrid-space specs (a few hundred sampled ones, reused with different trial ids) and
their analytic costs (params, macs, activation_bytes, bytes, bitops) jittered per trial so that
the front is not a handful of duplicates. About 2% of the trials fail and 1% are pruned. All rows
are written in one transaction, so 100,000 trials take seconds rather than a driver's hours.

    python bench/make_big_run.py --trials 100000 --out /tmp/bigruns --name big100k
    python -m mixnas report /tmp/bigruns/big100k
    python -m mixnas runs /tmp/bigruns

``--time N`` then times, N times each in a fresh process (imports included), what reads the run:
``mixnas report RUN``, ``load_trials(RUN)`` and ``mixnas runs`` on a folder holding only that
run, and prints the fastest and the median wall time of each (``--existing`` times a run folder
already written instead of writing one). The commands run from this checkout, so timing another
checkout means running its copy of this file.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixnas.config import parse_config
from mixnas.job import prepare
from mixnas.manifest import CONFIG, MANIFEST, manifest, write_json_atomic
from mixnas.records import DB_NAME, FAILED, OK, PRUNED, RunStore

COSTS = ("params", "macs", "activation_bytes", "bytes", "bitops")


def big_config(name: str, runs_dir: str | Path, trials: int, objectives: int = 2) -> Any:
    """The config of the synthetic run: macs and params minimised (and bitops for three)."""
    metrics = ["macs", "params", "bitops"][:objectives]
    return parse_config(
        {
            "name": name,
            "seed": 0,
            "space": "hybrid",
            "objectives": [{"metric": m, "direction": "minimize"} for m in metrics],
            "strategy": {"name": "random"},
            "budget": {"trials": trials},
            "backend": {"name": "local", "workers": 0},
            "runs_dir": str(runs_dir),
        }
    )


def sample_specs(count: int, seed: int) -> list[tuple[str, str, dict[str, float]]]:
    """``count`` hybrid-space specs as (spec id, canonical JSON, analytic costs)."""
    from search_space import spec_cost
    from search_space.declare.loader import load_space

    space = load_space("hybrid")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        spec = space.sample(rng)
        cost = spec_cost(spec)
        costs = {m: float(getattr(cost, m)) for m in COSTS}
        out.append((spec.id, json.dumps(spec.to_dict(), sort_keys=True), costs))
    return out


def make_big_run(
    runs_dir: str | Path,
    name: str,
    trials: int,
    *,
    objectives: int = 2,
    unique_specs: int = 300,
    seed: int = 0,
    specs: list[tuple[str, str, dict[str, float]]] | None = None,
) -> Path:
    """Writes the run folder ``runs_dir/name`` with ``trials`` finished trials; returns it.

    ``specs`` (from `sample_specs`) may be passed to reuse one sample across several runs.
    """
    config = big_config(name, runs_dir, trials, objectives)
    run_dir = config.run_dir
    if (run_dir / DB_NAME).exists():
        raise FileExistsError(f"{run_dir} already holds a run")
    job = prepare(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / CONFIG, config.to_dict())
    write_json_atomic(
        run_dir / MANIFEST, manifest(config.to_dict(), job.space_hash, backend="local")
    )
    with RunStore(run_dir):
        pass  # creates the schema (whatever its current version)
    if specs is None:
        specs = sample_specs(unique_specs, seed)
    rng = np.random.default_rng(seed + 1)
    pick = rng.integers(0, len(specs), trials)
    jitter = np.exp(rng.normal(0.0, 0.25, (trials, len(COSTS))))
    status = rng.choice([OK, FAILED, PRUNED], size=trials, p=[0.97, 0.02, 0.01])
    t0 = time.time() - trials * 0.002
    rows = []
    for i in range(trials):
        spec_id, spec_json, costs = specs[pick[i]]
        metrics: dict[str, float | None] = {
            m: float(math.floor(costs[m] * jitter[i, k])) for k, m in enumerate(COSTS)
        }
        error = ""
        if status[i] == FAILED:
            metrics, error = {}, "RuntimeError: this architecture breaks the evaluator"
        elif status[i] == PRUNED:
            metrics = {"params": metrics["params"], "macs": metrics["macs"]}
        started = t0 + i * 0.002
        rows.append(
            (
                i,
                f"{spec_id[:8]}{i:08x}",  # a run never repeats a spec id; the spec text may repeat
                "random",
                str(status[i]),
                spec_json,
                json.dumps(metrics, sort_keys=True),
                json.dumps({"cost": 0.001}),
                json.dumps(["cost"]),
                error,
                started,
                started + 0.0015,
                "inline:0",
                i,
            )
        )
    conn = sqlite3.connect(run_dir / DB_NAME, isolation_level=None)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(trials)")]
    base = [
        "trial_id", "spec_id", "origin", "status", "spec", "metrics", "timings", "stages",
        "error", "started", "finished", "worker",
    ]  # fmt: skip
    names = base + (["seq"] if "seq" in columns else [])
    width = len(names)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        f"INSERT INTO trials ({', '.join(names)}) VALUES ({', '.join('?' * width)})",
        (r[:width] for r in rows),
    )
    conn.execute("COMMIT")
    conn.close()
    return run_dir


def time_reads(run_dir: Path, repeats: int, timeout: float = 1800.0) -> dict[str, list[float]]:
    """Wall seconds of each reading command, ``repeats`` times, each in a fresh process."""
    root = Path(__file__).resolve().parents[1]
    load = f"from mixnas import load_trials; load_trials({str(run_dir)!r})"
    with tempfile.TemporaryDirectory() as tmp:
        alone = Path(tmp) / run_dir.name  # `mixnas runs` on a folder holding this run only
        alone.symlink_to(run_dir.resolve(), target_is_directory=True)
        commands = {
            "mixnas report RUN": [sys.executable, "-m", "mixnas", "report", str(run_dir)],
            "load_trials(RUN)": [sys.executable, "-c", load],
            "mixnas runs": [sys.executable, "-m", "mixnas", "runs", tmp],
        }
        times: dict[str, list[float]] = {}
        for label, command in commands.items():
            times[label] = []
            for _ in range(repeats):
                start = time.perf_counter()
                try:
                    subprocess.run(
                        command, cwd=root, check=True, capture_output=True, timeout=timeout
                    )
                except subprocess.TimeoutExpired:
                    times[label].append(math.inf)
                    break
                times[label].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--out", default="/tmp/bigruns", help="the runs folder to write into")
    parser.add_argument("--name", default=None, help="default: big<trials>")
    parser.add_argument("--objectives", type=int, choices=(2, 3), default=2)
    parser.add_argument("--unique-specs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time", type=int, default=0, metavar="N", help="time the reads N times")
    parser.add_argument("--existing", help="time this run folder instead of writing one")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per command, seconds")
    args = parser.parse_args(argv)
    if args.existing:
        run_dir = Path(args.existing)
    else:
        start = time.perf_counter()
        run_dir = make_big_run(
            args.out,
            args.name or f"big{args.trials}",
            args.trials,
            objectives=args.objectives,
            unique_specs=args.unique_specs,
            seed=args.seed,
        )
        print(f"wrote {run_dir} ({args.trials} trials) in {time.perf_counter() - start:.1f} s")
    if args.time:
        for label, seconds in time_reads(run_dir, args.time, args.timeout).items():
            if math.isinf(min(seconds)):
                print(f"{label}: did not finish in {args.timeout:g} s")
                continue
            shown = ", ".join("timeout" if math.isinf(s) else f"{s:.2f}" for s in seconds)
            print(
                f"{label}: fastest {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s"
                f" ({shown})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
