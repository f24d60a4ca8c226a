"""The Pareto front and the best trial of a run, from its records.

A trial is on the front when it finished ``ok``, reports every objective, meets the config's
constraints, and no other such trial is at least as good on every objective and better on one.

Each rule has a record form (`eligible`, `front`, `best`, `hypervolume_curve`: lists of
`TrialRecord`) and an array form (`eligible_mask`, `nondominated`, `hypervolume_trace`) for runs
of 100,000 trials, where the report and ``mixnas runs`` read the metrics as columns. The array
forms are what the record forms call, so the two never disagree.

Costs (n trials, f of them on the front): `nondominated` is O(n log n) for one or two
objectives and O(n f) comparisons for three or more (a sweep in lexicographic order, checking
blocks of rows against the front found so far); `hypervolume_trace` keeps the running front and
evaluates the hypervolume of that front only, at most ``max_points`` times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from mixnas.config import ObjectiveConfig
from mixnas.records import OK, TrialRecord
from strategies.base import MINIMIZE, Direction
from strategies.multiobjective import hypervolume, to_losses

# elements of the temporary boolean blocks in the pairwise dominance checks (about 4 MB)
_BLOCK_ELEMENTS = 1 << 22
_SWEEP_BLOCK = 256  # rows checked against the front at a time in the m >= 3 sweep


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
        if violations(metric, value, bound):
            return False
    return True


def violations(metric: str, value: float, bound: Mapping[str, float]) -> list[str]:
    """Each side of a constraint ``bound`` (``{max: ..., min: ...}``) that ``value`` breaks, in
    words (``params 136,558 > max 120,000``); empty when it meets the bound."""
    broken = []
    if "max" in bound and value > bound["max"]:
        broken.append(f"{metric} {value:,.0f} > max {bound['max']:,.0f}")
    if "min" in bound and value < bound["min"]:
        broken.append(f"{metric} {value:,.0f} < min {bound['min']:,.0f}")
    return broken


def eligible_mask(
    status: Sequence[str] | np.ndarray,
    metrics: Mapping[str, np.ndarray],
    objectives: Sequence[ObjectiveConfig],
    constraints: Mapping[str, Mapping[str, float]],
) -> np.ndarray:
    """`eligible` for columns: ``metrics`` maps a name to one float per trial (NaN: missing)."""
    n = len(status)
    ok = np.asarray(status, dtype=object) == OK
    nan = np.full(n, math.nan)
    for o in objectives:
        ok &= np.isfinite(metrics.get(o.metric, nan))
    for metric, bound in constraints.items():
        value = metrics.get(metric, nan)
        ok &= np.isfinite(value)
        with np.errstate(invalid="ignore"):
            if "max" in bound:
                ok &= ~(value > bound["max"])
            if "min" in bound:
                ok &= ~(value < bound["min"])
    return ok


def objective_matrix(
    records: Sequence[TrialRecord], objectives: Sequence[ObjectiveConfig]
) -> np.ndarray:
    return np.array(
        [[r.metrics[o.metric] for o in objectives] for r in records], dtype=float
    ).reshape(len(records), len(objectives))


def nondominated(F: np.ndarray) -> np.ndarray:
    """Which rows of the loss matrix ``F`` (n, m) no other row dominates.

    The rule of `strategies.multiobjective.pareto_mask` (duplicates of a non-dominated row are
    all kept; rows with a NaN or infinite loss are never kept), at the cost given in the module
    docstring instead of its O(m n^2).
    """
    F = np.asarray(F, dtype=float)
    n, m = F.shape
    mask = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(np.isfinite(F).all(axis=1))
    if rows.size == 0 or m == 0:
        mask[rows] = True
        return mask
    P = F[rows]
    if m == 1:
        mask[rows] = P[:, 0] == P[:, 0].min()
        return mask
    order = np.lexsort(P.T[::-1])  # by the first column, ties by the second, ...
    S = P[order]
    keep = _sweep2(S) if m == 2 else _sweep(S)
    mask[rows[order[keep]]] = True
    return mask


def _sweep2(S: np.ndarray) -> np.ndarray:
    """Non-dominated rows of a lexicographically sorted 2-column matrix."""
    x, y = S[:, 0], S[:, 1]
    starts = np.concatenate(([True], x[1:] != x[:-1]))
    group = np.cumsum(starts) - 1
    lowest = y[starts]  # sorted by y within equal x: each group's first row is its lowest
    before = np.concatenate(([np.inf], np.minimum.accumulate(lowest)[:-1]))
    # kept: lowest of its x (ties kept) and strictly lower than every row of smaller x
    return (y == lowest[group]) & (lowest[group] < before[group])


def _dominated_by(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """For each row of B: does some row of A dominate it?"""
    out = np.zeros(B.shape[0], dtype=bool)
    if A.shape[0] == 0 or B.shape[0] == 0:
        return out
    step = max(1, _BLOCK_ELEMENTS // B.shape[0])
    for start in range(0, A.shape[0], step):
        a = A[start : start + step]
        no_worse = np.ones((a.shape[0], B.shape[0]), dtype=bool)
        better = np.zeros_like(no_worse)
        for k in range(A.shape[1]):
            no_worse &= a[:, k, None] <= B[None, :, k]
            better |= a[:, k, None] < B[None, :, k]
        out |= np.any(no_worse & better, axis=0)
    return out


def _sweep(S: np.ndarray) -> np.ndarray:
    """Non-dominated rows of a lexicographically sorted matrix (any number of columns).

    A row can only be dominated by a row before it in lexicographic order, and a dominated row
    is also dominated by a non-dominated one, so each block of rows is checked against the front
    of the rows before it, then against itself; the front only grows.
    """
    keep = np.zeros(S.shape[0], dtype=bool)
    found: list[np.ndarray] = []
    current = S[:0]
    for start in range(0, S.shape[0], _SWEEP_BLOCK):
        block = S[start : start + _SWEEP_BLOCK]
        alive = np.flatnonzero(~_dominated_by(current, block))
        alive = alive[~_dominated_by(block[alive], block[alive])]
        if alive.size:
            keep[start + alive] = True
            found.append(block[alive])
            current = np.concatenate(found)
            found = [current]
    return keep


def front(
    records: Sequence[TrialRecord],
    objectives: Sequence[ObjectiveConfig],
    constraints: Mapping[str, Mapping[str, float]],
) -> list[TrialRecord]:
    """The non-dominated eligible records, in the order given (trial order for a store's)."""
    ok = [r for r in records if eligible(r, objectives, constraints)]
    if not ok:
        return []
    losses = to_losses(objective_matrix(ok, objectives), [o.direction for o in objectives])
    return [r for r, keep in zip(ok, nondominated(losses), strict=True) if keep]


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


def sample_positions(n: int, max_points: int | None) -> np.ndarray:
    """Up to ``max_points`` evenly spaced positions of ``range(n)``, the last one included
    (every position when ``max_points`` is None or at least ``n``)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 2:
        return np.array([n - 1])
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def hypervolume_trace(
    losses: np.ndarray, counted: np.ndarray, *, max_points: int | None = None
) -> tuple[np.ndarray, list[float], list[float]]:
    """Hypervolume of the front after each of n trials (in trial order), in normalised loss space.

    ``losses`` (n, m) are the trials' losses and ``counted`` (n,) says which trials are eligible
    (the others add nothing). Each objective is scaled to [0, 1] by the range of the eligible
    values, and the reference point is 1.1 in every objective. The hypervolume is computed at
    the positions `sample_positions` picks, from the front of the trials up to each (the front
    of a prefix is the front of the previous front and the new trials, so each step costs the
    front's size, not the run's). Returns (positions, hypervolumes, reference point).
    """
    counted = np.asarray(counted, dtype=bool)
    m = losses.shape[1]
    ref = np.full(m, 1.1)
    if not counted.any():
        return np.arange(0), [], []
    ok = losses[counted]
    low, high = ok.min(axis=0), ok.max(axis=0)
    scaled = (losses - low) / np.where(high > low, high - low, 1.0)
    positions, values = prefix_hypervolumes(scaled, counted, ref, max_points=max_points)
    return positions, values, [float(v) for v in ref]


def prefix_hypervolumes(
    losses: np.ndarray,
    counted: np.ndarray,
    ref_loss: np.ndarray,
    *,
    max_points: int | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Hypervolume, from ``ref_loss``, of the front of the counted trials up to each of the
    positions `sample_positions` picks (trials not below the reference in every loss add
    nothing). The front of a prefix is the front of the previous front and the new trials, so each
    step costs the size of the front so far, not of the run."""
    counted = np.asarray(counted, dtype=bool)
    inside = counted & np.all(losses < ref_loss, axis=1)
    positions = sample_positions(len(counted), max_points)
    current = losses[:0]
    values: list[float] = []
    value, done = 0.0, 0
    for p in positions:
        new = losses[done : p + 1][inside[done : p + 1]]
        done = p + 1
        if new.shape[0]:
            candidates = np.concatenate([current, new])
            current = candidates[nondominated(candidates)]
            value = hypervolume(current, ref_loss)
        values.append(value)
    return positions, values


def hypervolume_curve(
    records: Sequence[TrialRecord],
    objectives: Sequence[ObjectiveConfig],
    constraints: Mapping[str, Mapping[str, float]],
    *,
    max_points: int | None = None,
) -> tuple[list[int], list[float], list[float]]:
    """Hypervolume of the front after each trial (see `hypervolume_trace`), or after up to
    ``max_points`` evenly spaced trials. Returns (trial numbers, hypervolumes, reference point).
    """
    ordered = sorted(records, key=lambda r: r.trial_id)
    counted = np.array([eligible(r, objectives, constraints) for r in ordered], dtype=bool)
    losses = np.full((len(ordered), len(objectives)), np.inf)
    if counted.any():
        ok = [r for r, c in zip(ordered, counted, strict=True) if c]
        losses[counted] = to_losses(
            objective_matrix(ok, objectives), [o.direction for o in objectives]
        )
    positions, values, ref = hypervolume_trace(losses, counted, max_points=max_points)
    return [ordered[p].trial_id for p in positions], values, ref


def ranked(
    status: Sequence[str] | np.ndarray,
    metrics: Mapping[str, np.ndarray],
    constraints: Mapping[str, Mapping[str, float]],
    metric: str,
    direction: Direction,
    k: int | None = None,
) -> list[int]:
    """Positions of the best ``k`` trials (all when None) on one metric, best first: those that
    finished ok, report the metric and meet the constraints (`eligible_mask` with the metric as
    the only objective); ties go to the earlier position."""
    values = np.asarray(metrics.get(metric, np.full(len(status), math.nan)), dtype=float)
    objective = ObjectiveConfig(metric=metric, direction=direction)
    rows = np.flatnonzero(
        eligible_mask(status, {**metrics, metric: values}, [objective], constraints)
    )
    loss = values[rows] if direction == MINIMIZE else -values[rows]
    order = rows[np.lexsort((rows, loss))]
    return [int(p) for p in (order if k is None else order[:k])]


def common_hypervolumes(
    loss_sets: Sequence[np.ndarray], margin: float = 1.1
) -> tuple[list[float], np.ndarray]:
    """The hypervolume of each set of losses (rows: trials, one column per objective) against
    one reference, so that runs compare: every objective is scaled to [0, 1] by the range of
    all the sets together and the reference is ``margin`` in each (`hypervolume_trace`'s
    convention). Returns the hypervolumes and the reference point in loss units (a maximised
    objective's loss is its negated value); the reference is NaN when no set has a row."""
    sets = [np.asarray(s, dtype=float) for s in loss_sets]
    m = next((s.shape[1] for s in sets if s.ndim == 2), 0)
    rows = [s for s in sets if s.size]
    if not rows:
        return [0.0] * len(sets), np.full(m, math.nan)
    union = np.concatenate(rows)
    low, high = union.min(axis=0), union.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    ref = np.full(union.shape[1], margin)
    out = []
    for s in sets:
        if not s.size:
            out.append(0.0)
            continue
        scaled = (s - low) / span
        out.append(float(hypervolume(scaled[nondominated(scaled)], ref)))
    return out, low + margin * span
