"""Quantization on trained hybrid specs: PTQ accuracy at fp32 / int8 / mixed policies, measured
int8 vs fp32 CPU latency, and the architecture x policy front against the fixed-8-bit front.

Samples ``--n`` architectures from a space (default `hybrid_cpu`), trains each once in float for
``--steps`` steps on scikit-learn's digits (offline, `evaluators.data`), then quantizes a copy of
the trained model under each policy below, calibrates it on 4 training batches and measures
validation accuracy (the ``ptq`` evaluator's procedure, `evaluators.ptq`):

- ``fp32``: no quantization;
- ``int8``: W8A8 everywhere, per-tensor weights, MSE-calibrated ranges, log2 softmax;
- ``int8_pc``: the same with per-channel weights;
- ``mixed``: the spec's own per-stage policy as sampled from the space (4/8/32-bit weights,
  8/32-bit activations; stem and head W8A8);
- ``w4a8``: 4-bit per-channel weights and 8-bit activations in every block (stem and head W8A8);
- ``w4a8_bc``: ``w4a8`` plus bias correction.

Latency: the float model and its int8 counterpart (every ``nn.Linear`` dynamically quantized,
`predictors.quantize`; convolutions stay float: torch has no dynamic int8 convolution) timed with
`predictors.timing` (1 thread, batch 1 and 32, the minimum of the samples, which repeats best on
a shared machine).

Front: objectives (weight bytes under the policy, top-1 error after PTQ). The fixed-8-bit front
uses each architecture at ``int8``; the joint front may pick any (architecture, policy) pair among
``int8``, ``int8_pc``, ``mixed``, ``w4a8`` and ``w4a8_bc``. Hypervolumes use the same reference
point (1.1 x the largest size, 100 % error).

    python bench/quant.py --n 20 --steps 300 --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import copy
import json
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_nb201 import write_section
from evaluators import EvalContext
from evaluators.data import Dataset
from evaluators.ptq import PostTrainingQuantization, calibration_batches, correct_biases
from evaluators.training import _validate
from predictors.timing import TimingOptions, measure_spec
from search_space import load_space, spec_cost
from search_space.nn.quant.policy import apply_policy, calibrate
from search_space.quant import float_policy, with_policy
from search_space.spec import ArchSpec, Quant
from strategies.multiobjective import hypervolume, pareto_mask

W8A8 = Quant(8, 8)
# name -> (policy of a spec, bias correction)
POLICIES: dict[str, tuple[Callable[[ArchSpec], ArchSpec], bool]] = {
    "fp32": (float_policy, False),
    "int8": (lambda s: with_policy(s, W8A8, W8A8), False),
    "int8_pc": (lambda s: with_policy(s, Quant(8, 8, "per_channel"), W8A8), False),
    "mixed": (lambda s: s.replace(boundary_quant=W8A8), False),
    "w4a8": (lambda s: with_policy(s, Quant(4, 8, "per_channel"), W8A8), False),
    "w4a8_bc": (lambda s: with_policy(s, Quant(4, 8, "per_channel"), W8A8), True),
}
JOINT = ("int8", "int8_pc", "mixed", "w4a8", "w4a8_bc")


class _EveryPolicy(PostTrainingQuantization):
    """Trains once in float, then scores a copy of the trained model under every policy."""

    def after_training(
        self,
        spec: ArchSpec,
        model: Any,
        data: Dataset,
        cfg: Mapping[str, Any],
        final: dict[str, float],
    ) -> dict[str, float]:
        device = next(model.parameters()).device
        batches = calibration_batches(data, cfg, device)
        x_val, y_val = data.x_val.to(device), data.y_val.to(device)
        out = dict(final)
        for name, (policy, bias_correction) in POLICIES.items():
            if name == "fp32":
                out["top1@fp32"] = final["top1"]
                continue
            quantized = apply_policy(copy.deepcopy(model), policy(spec))
            calibrate(quantized, batches, str(cfg["calibration"]))
            if bias_correction:
                correct_biases(quantized, batches)
            out[f"top1@{name}"] = _validate(quantized, x_val, y_val, cfg)["top1"]
        return out


BATCHES = (1, 32)


def _latency(spec: ArchSpec, dtype: str, repeats: int, batch: int) -> float:
    options = TimingOptions(
        dtype=dtype, statistic="min", repeats=repeats, warmup=3, batch_size=batch
    )
    return measure_spec(spec, options, seed=0).min_ms


def run_one(spec: ArchSpec, steps: int, repeats: int, latency: bool) -> dict[str, Any]:
    """Trains ``spec`` once and evaluates every policy; times fp32 and int8 when asked."""
    start = time.perf_counter()
    evaluator = _EveryPolicy(calibration="mse", calib_batches=4)
    result = evaluator.evaluate(spec, EvalContext(seed=0, budget={"steps": steps}, data="digits"))
    if not result.ok:
        return {"spec": spec.id, "error": result.error}
    row: dict[str, Any] = {
        "spec": spec.id,
        "mixers": spec.mixer_names(),
        "params": spec_cost(spec).params,
        "top1": {name: result.metrics[f"top1@{name}"] for name in POLICIES},
        "bytes": {name: spec_cost(policy(spec)).bytes for name, (policy, _) in POLICIES.items()},
        "bitops": {name: spec_cost(policy(spec)).bitops for name, (policy, _) in POLICIES.items()},
        "train_seconds": result.metrics["train_seconds"],
    }
    if latency:
        row["latency_ms"] = {
            f"{dt}@{b}": _latency(spec, dt, repeats, b) for b in BATCHES for dt in ("fp32", "int8")
        }
    row["seconds"] = time.perf_counter() - start
    return row


def fronts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Fixed-8-bit and joint fronts over (megabytes, top-1 error) with their hypervolumes."""
    fixed = np.array([[r["bytes"]["int8"] / 1e6, 100 - r["top1"]["int8"]] for r in rows])
    joint = np.array(
        [[r["bytes"][p] / 1e6, 100 - r["top1"][p]] for r in rows for p in JOINT], dtype=float
    )
    ref = np.array([1.1 * float(joint[:, 0].max()), 100.0])
    return {
        "ref": ref.tolist(),
        "hv_fixed8": hypervolume(fixed, ref),
        "hv_joint": hypervolume(joint, ref),
        "front_fixed8": sorted(fixed[pareto_mask(fixed)].tolist()),
        "front_joint": sorted(joint[pareto_mask(joint)].tolist()),
    }


def render(rows: list[dict[str, Any]], summary: dict[str, Any], command: str) -> str:
    ok = [r for r in rows if "error" not in r]
    lines = [
        "## Quantization: PTQ accuracy, int8 latency, joint front (bench/quant.py)",
        "",
        f"`{command}` on {platform.machine()} ({platform.python_implementation()} "
        f"{platform.python_version()}), {len(ok)} of {len(rows)} specs trained. Accuracy is "
        "top-1 on the digits validation split after float training and post-training "
        "quantization (MSE calibration on 4 x 64 training images); the drop is fp32 minus the "
        "policy, in points.",
        "",
        "| policy | mean top-1 | mean drop | max drop | specs within 1 point | mean weight KB |",
        "|---|---|---|---|---|---|",
    ]
    for name in POLICIES:
        drops = np.array([r["top1"]["fp32"] - r["top1"][name] for r in ok])
        top1 = np.array([r["top1"][name] for r in ok])
        size = np.mean([r["bytes"][name] for r in ok]) / 1e3
        lines.append(
            f"| {name} | {top1.mean():.2f} | {drops.mean():+.2f} | {drops.max():+.2f} | "
            f"{int((drops <= 1.0).sum())}/{len(ok)} | {size:.1f} |"
        )
    if ok and "latency_ms" in ok[0]:
        lines += ["", "Measured CPU latency (1 thread, minimum of the samples, per forward pass):"]
        for b in BATCHES:
            fp = np.array([r["latency_ms"][f"fp32@{b}"] for r in ok])
            q8 = np.array([r["latency_ms"][f"int8@{b}"] for r in ok])
            ratio = fp / q8
            lines.append(
                f"- batch {b}: fp32 median {np.median(fp):.3f} ms, int8 (dynamic int8 Linear, "
                f"float convolutions) median {np.median(q8):.3f} ms; speed-up fp32 / int8 "
                f"median {np.median(ratio):.2f}x (range {ratio.min():.2f}x to "
                f"{ratio.max():.2f}x; int8 faster on {int((ratio > 1).sum())}/{len(ok)} specs)."
            )
    lines += [
        "",
        f"Fronts over (weight MB, top-1 error %), reference point {summary['ref'][0]:.3f} MB / "
        f"100 %: hypervolume fixed 8-bit {summary['hv_fixed8']:.4f}, joint architecture x "
        f"policy {summary['hv_joint']:.4f} ({len(summary['front_joint'])} points on the joint "
        f"front, {len(summary['front_fixed8'])} on the fixed one). The joint set contains the "
        "fixed one, so it matches or dominates it by construction; the margin is what the "
        "lower-bit policies add.",
        "",
        "Per spec: top-1 per policy; latency in ms at batch 1 and 32 (fp32 / int8).",
        "",
        "| spec | mixers | fp32 | int8 | int8_pc | mixed | w4a8 | w4a8_bc | b1 ms | b32 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ok:
        lat = r.get("latency_ms", {})
        cells = " | ".join(f"{r['top1'][p]:.1f}" for p in POLICIES)
        times = " | ".join(
            f"{lat.get(f'fp32@{b}', float('nan')):.2f} / {lat.get(f'int8@{b}', float('nan')):.2f}"
            for b in BATCHES
        )
        lines.append(f"| `{r['spec']}` | {', '.join(r['mixers'])} | {cells} | {times} |")
    return "\n".join(lines) + "\n"


def _logged_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Rows an earlier run printed to stderr (``[i/n] {json}`` lines), by spec id."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.startswith("[") and "] {" in line:
            row = json.loads(line.split("] ", 1)[1])
            rows[row["spec"]] = row
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid_cpu")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=15, help="timing samples per model")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--json", type=Path, help="write every row here")
    parser.add_argument("--out", type=Path, help="markdown file whose section to rewrite")
    parser.add_argument(
        "--resume-log",
        type=Path,
        help="the stderr of an interrupted run with the same arguments: its rows are reused",
    )
    args = parser.parse_args(argv)
    space = load_space(args.space)
    rng = np.random.default_rng(args.seed)
    specs = [space.sample(rng) for _ in range(args.n)]
    done = _logged_rows(args.resume_log) if args.resume_log else {}
    rows = []
    for i, spec in enumerate(specs):
        if spec.id in done:
            rows.append(done[spec.id])
            continue
        row = run_one(spec, args.steps, args.repeats, not args.no_latency)
        rows.append(row)
        print(f"[{i + 1}/{len(specs)}] {json.dumps(row)}", file=sys.stderr, flush=True)
    ok = [r for r in rows if "error" not in r]
    summary = fronts(ok)
    command = "python bench/quant.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(rows, summary, command.strip())
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "fronts": summary}, indent=1))
    if args.out:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
