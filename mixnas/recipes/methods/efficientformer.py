"""How the EfficientFormer recipe's slimmed spec compares with an NSGA-II search of the same space.

The recipe scores both on one yardstick: the NSGA-II search and a one-trial "judge" search of the
chosen spec use the same evaluators (inherited accuracy from the same SPOS supernet, latency from
the same host table). `compare` then asks whether the chosen point is dominated by the NSGA-II
front, how much hypervolume it adds to it (reference: the worst value of each objective among all
points, 10% beyond), and how far it is from the front in objective space normalised by the
front's ranges (0 when it is not dominated).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mixnas.recipes.recipe import RecipeError


def _losses(run_dir: Path) -> tuple[np.ndarray, list[str], list[Any]]:
    """The run's finished trials as losses (every objective minimised), their metric names and
    their records."""
    from mixnas.front import objective_matrix, to_losses
    from mixnas.report.data import RunData

    run = RunData.load(run_dir)
    records = run.records_of([i for i, s in enumerate(run.trials.status) if s == "ok"])
    matrix = objective_matrix(records, run.objectives)
    losses = to_losses(matrix, [o.direction for o in run.objectives])
    keep = np.all(np.isfinite(losses), axis=1)
    return (
        losses[keep],
        [o.metric for o in run.objectives],
        [r for r, k in zip(records, keep, strict=True) if k],
    )


def compare(out_dir: Path, config: Mapping[str, Any], *, quiet: bool = True) -> dict[str, Any]:
    from mixnas.front import nondominated
    from strategies.multiobjective import hypervolume

    front_losses, metrics, _ = _losses(Path(config["search"]))
    chosen_losses, chosen_metrics, records = _losses(Path(config["judge"]))
    if metrics != chosen_metrics:
        raise RecipeError(str(config["judge"]), "objectives", f"{chosen_metrics} != {metrics}")
    if len(front_losses) == 0 or len(chosen_losses) == 0:
        raise RecipeError(str(config["judge"]), "trials", "a search has no finished trial")
    point = chosen_losses[0]
    front = front_losses[nondominated(front_losses)]
    everything = np.vstack([front_losses, point[None, :]])
    lo, hi = everything.min(axis=0), everything.max(axis=0)
    ref = hi + 0.1 * np.maximum(hi - lo, 1e-12)
    contribution = hypervolume(np.vstack([front, point[None, :]]), ref) - hypervolume(front, ref)
    dominated = bool(np.any(np.all(front <= point, axis=1) & np.any(front < point, axis=1)))
    scale = np.maximum(front.max(axis=0) - front.min(axis=0), 1e-12)
    # distance to the front's dominated region: how far the point must move to stop being
    # dominated, in units of the front's ranges (0 when it is not dominated)
    shortfall = np.maximum(point[None, :] - front, 0.0) / scale
    distance = float(np.min(np.linalg.norm(shortfall, axis=1))) if dominated else 0.0
    from mixnas.report.data import RunData

    directions = [o.direction for o in RunData.load(Path(config["search"])).objectives]
    sign = {m: (-1.0 if d == "maximize" else 1.0) for m, d in zip(metrics, directions, strict=True)}
    summary = {
        "objectives": metrics,
        "chosen": {m: float(sign[m] * v) for m, v in zip(metrics, point, strict=True)},
        "chosen_spec": records[0].spec_id,
        "front": [
            {m: float(sign[m] * v) for m, v in zip(metrics, row, strict=True)}
            for row in front.tolist()
        ],
        "dominated": dominated,
        "hv_contribution": float(contribution),
        "distance": distance,
    }
    (out_dir / "compare.json").write_text(json.dumps(summary, indent=2))
    return {
        "summary": str(out_dir / "compare.json"),
        "dominated": dominated,
        "hv_contribution": float(contribution),
        "distance": distance,
        "front_size": len(front),
        **{f"chosen_{m.replace('@', '_')}": summary["chosen"][m] for m in metrics},
    }
