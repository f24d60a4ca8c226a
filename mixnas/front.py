"""The Pareto front and the best trial of a run, from its records.

A trial is on the front when it finished ``ok``, reports every objective, meets the config's
constraints, and no other such trial is at least as good on every objective and better on one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from mixnas.config import ObjectiveConfig
from mixnas.records import OK, TrialRecord
from strategies.multiobjective import hypervolume, pareto_mask, to_losses


def eligible(
    record: TrialRecord,
    objectives: Sequence[ObjectiveConfig],
    constraints: Mapping[str, Mapping[str, float]],
) -> bool:
    if record.status != OK:
        return False
    for o in objectives:
        if not math.isfinite(record.metrics.get(o.metric, math.nan)):
            return False
    for metric, bound in constraints.items():
        value = record.metrics.get(metric, math.nan)
        if not math.isfinite(value):
            return False
        if "max" in bound and value > bound["max"]:
            return False
        if "min" in bound and value < bound["min"]:
            return False
    return True


def objective_matrix(
    records: Sequence[TrialRecord], objectives: Sequence[ObjectiveConfig]
) -> np.ndarray:
    return np.array(
        [[r.metrics[o.metric] for o in objectives] for r in records], dtype=float
    ).reshape(len(records), len(objectives))


def front(
    records: Sequence[TrialRecord],
    objectives: Sequence[ObjectiveConfig],
    constraints: Mapping[str, Mapping[str, float]],
) -> list[TrialRecord]:
    """The non-dominated eligible records, in trial order."""
    ok = [r for r in records if eligible(r, objectives, constraints)]
    if not ok:
        return []
    losses = to_losses(objective_matrix(ok, objectives), [o.direction for o in objectives])
    return [r for r, keep in zip(ok, pareto_mask(losses), strict=True) if keep]


def best(
    records: Sequence[TrialRecord],
    objectives: Sequence[ObjectiveConfig],
    constraints: Mapping[str, Mapping[str, float]],
) -> TrialRecord | None:
    """The best eligible record on the first objective (ties: the earlier trial)."""
    ok = [r for r in records if eligible(r, objectives, constraints)]
    if not ok:
        return None
    first = objectives[0]
    sign = -1.0 if first.direction == "maximize" else 1.0
    return min(ok, key=lambda r: (sign * r.metrics[first.metric], r.trial_id))


def hypervolume_curve(
    records: Sequence[TrialRecord],
    objectives: Sequence[ObjectiveConfig],
    constraints: Mapping[str, Mapping[str, float]],
) -> tuple[list[int], list[float], list[float]]:
    """Hypervolume of the front after each trial, in normalised loss space.

    Each objective is scaled to [0, 1] by the range of the run's eligible values (so that the
    figure compares progress within a run, not across runs), and the reference point is 1.1 in
    every objective. Returns (trial numbers, hypervolumes, reference point).
    """
    ok = [r for r in records if eligible(r, objectives, constraints)]
    if not ok:
        return [], [], []
    losses = to_losses(objective_matrix(ok, objectives), [o.direction for o in objectives])
    low, high = losses.min(axis=0), losses.max(axis=0)
    scaled = (losses - low) / np.where(high > low, high - low, 1.0)
    ref = np.full(len(objectives), 1.1)
    done = {r.trial_id: i for i, r in enumerate(ok)}
    trials, values, rows = [], [], []
    for r in sorted(records, key=lambda r: r.trial_id):
        if r.trial_id in done:
            rows.append(done[r.trial_id])
        trials.append(r.trial_id)
        values.append(hypervolume(scaled[rows], ref) if rows else 0.0)
    return trials, values, [float(v) for v in ref]
