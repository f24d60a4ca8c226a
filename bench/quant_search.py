"""Joint architecture x bit-width search against the same search with a fixed 8-bit policy.

Two `mixnas search` jobs, identical but for the space's quantization menu: ``joint`` searches the
`hybrid_cpu` space as declared (per-stage weight bits 4/8/32, activation bits 8/32, per-channel
or per-tensor; stem and head W8A8), ``fixed8`` the same space with every stage at W8A8 per
tensor. Both maximise the ``ptq`` evaluator's ``top1`` (short float training on digits, then
post-training quantization to the candidate's policy, `evaluators.ptq`) and minimise ``bytes``
(weight bytes under the policy, analytic), with NSGA-II, the same seed and trial budget. The
fronts are compared by hypervolume over (weight MB, top-1 error %) from one reference point (1.1 x
the largest size either run evaluated, 100 % error).

    python bench/quant_search.py --trials 30 --steps 150 --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section
from mixnas.config import parse_config
from mixnas.driver import run_search
from mixnas.records import load_trials
from search_space.declare.loader import read_declaration
from search_space.spaces import builtin_path
from strategies.multiobjective import hypervolume, pareto_mask

FIXED8 = {
    "scope": "per_stage",
    "weight_bits": [8],
    "act_bits": [8],
    "granularity": ["per_tensor"],
    "boundary": {"weight_bits": 8, "act_bits": 8},
}


def spaces(base: str) -> dict[str, dict[str, Any]]:
    """The joint space (``base`` as declared) and its fixed-8-bit twin."""
    path = builtin_path(base) or Path(base)
    joint = read_declaration(path)
    assert isinstance(joint, dict)
    fixed = copy.deepcopy(joint)
    fixed["quantization"] = FIXED8
    fixed["name"] = f"{joint.get('name', base)}_fixed8"
    return {"joint": joint, "fixed8": fixed}


def config(name: str, space: dict[str, Any], args: argparse.Namespace, runs: Path) -> Any:
    return parse_config(
        {
            "name": name,
            "seed": args.seed,
            "space": space,
            "objectives": [
                {"metric": "top1", "direction": "maximize"},
                {"metric": "bytes", "direction": "minimize"},
            ],
            "evaluators": [
                {
                    "name": "ptq",
                    "budget": {"steps": args.steps},
                    "data": "digits",
                    "options": {"batch_size": 32, "calibration": "mse", "calib_batches": 4},
                }
            ],
            "strategy": {"name": "nsga2", "options": {"population_size": args.population}},
            "budget": {"trials": args.trials, "seconds": args.seconds},
            "backend": {"name": "local", "workers": args.workers},
            "trial_timeout": args.trial_timeout,
            "runs_dir": str(runs),
            "export": None,
        },
        source=f"bench/quant_search.py:{name}",
    )


def points(run_dir: Path) -> np.ndarray:
    """(weight MB, top-1 error %) of the run's successful trials."""
    frame = load_trials(run_dir)
    frame = frame[frame["status"] == "ok"]
    if frame.empty:
        errors = load_trials(run_dir)["error"].unique().tolist()
        raise RuntimeError(f"{run_dir}: no successful trial; errors: {errors[:3]}")
    return np.column_stack([frame["bytes"] / 1e6, 100.0 - frame["top1"]]).astype(float)


def render(result: dict[str, Any], command: str) -> str:
    ref = result["ref"]
    lines = [
        "## Quantization: joint architecture x bit-width search (bench/quant_search.py)",
        "",
        f"`{command}`: two NSGA-II searches of `hybrid_cpu` with the same seed and budget, "
        "objectives `top1` of the `ptq` evaluator (short float training on digits, then PTQ to "
        "the candidate's policy) and weight `bytes`. Hypervolume over (weight MB, top-1 "
        f"error %), reference {ref[0]:.3f} MB / 100 %.",
        "",
        "| search | trials ok | hypervolume | front (MB, error %) | seconds |",
        "|---|---|---|---|---|",
    ]
    for name in ("fixed8", "joint"):
        r = result[name]
        front = ", ".join(f"({b:.3f}, {e:.1f})" for b, e in r["front"])
        lines.append(f"| {name} | {r['ok']} | {r['hv']:.4f} | {front} | {r['seconds']:.0f} |")
    verdict = (
        "dominates or matches" if result["joint"]["hv"] >= result["fixed8"]["hv"] else ("is below")
    )
    lines += ["", f"The joint front {verdict} the fixed-8-bit front by hypervolume."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid_cpu")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--trial-timeout", type=int, default=900, help="seconds; a loaded machine needs more"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, help="keep the run folders here (default: temp)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--out", type=Path, help="markdown file whose section to rewrite")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or Path(tmp)
        result: dict[str, Any] = {}
        clouds = {}
        for name, space in spaces(args.space).items():
            start = time.perf_counter()
            summary = run_search(config(f"quant-{name}", space, args, runs), quiet=True)
            clouds[name] = points(summary.run_dir)
            result[name] = {"ok": len(clouds[name]), "seconds": time.perf_counter() - start}
            print(f"{name}: {len(clouds[name])} ok trials", file=sys.stderr, flush=True)
    ref = np.array([1.1 * max(float(c[:, 0].max()) for c in clouds.values()), 100.0])
    result["ref"] = ref.tolist()
    for name, cloud in clouds.items():
        front = cloud[pareto_mask(cloud)]
        result[name]["hv"] = hypervolume(cloud, ref)
        result[name]["front"] = sorted(front.tolist())
    command = "python bench/quant_search.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(result, command.strip())
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.out:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
