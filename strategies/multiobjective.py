"""Pareto machinery on loss matrices: sorting, crowding, hypervolume, IGD and benchmark regret.

Every function takes a loss matrix ``F`` of shape ``(n, m)``, one row per solution and one column
per objective, with every column to be *minimised*; `to_losses` (or `Objective.loss` in
`strategies.base`) negates maximised objectives first. Pure numpy: no torch, no optuna.

Non-finite losses mean a failed or incomplete evaluation. NaN is read as +inf everywhere, and the
sorting functions rank a row with any non-finite entry behind every finite row, so failures
always fill the last fronts however their remaining entries compare.

Complexities (n rows, m objectives):

* `non_dominated_sort`, `constrained_non_dominated_sort`, `pareto_mask`: O(m n^2) time,
  vectorised; the sorts hold an n x n boolean matrix (4 MB at n = 2000).
* `crowding_distance`: O(m n log n).
* `hypervolume`: O(n log n) for m = 2; O(n log n) comparisons for m = 3 (HV3D-style sweep whose
  staircase lives in a Python list, so inserts cost a memmove); O(n^(m-2) log n) by slicing
  for m >= 4, refused with a pointer to `hypervolume_mc` when that would take too long.
* `hypervolume_mc`: O(samples n m), in chunks that bound memory.
* `hypervolume_contributions`: O(n log n) for m = 2, one hypervolume per non-dominated row
  otherwise.
* `igd`, `igd_plus`: O(n r m) for r reference points, in chunks.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from strategies.base import MAXIMIZE, MINIMIZE

__all__ = [
    "EXACT_HV_WORK_LIMIT",
    "HV_REGRET_MARGIN",
    "MCEstimate",
    "constrained_non_dominated_sort",
    "crowding_distance",
    "hv_regret",
    "hypervolume",
    "hypervolume_contributions",
    "hypervolume_mc",
    "igd",
    "igd_plus",
    "non_dominated_sort",
    "normalize",
    "pareto_front",
    "pareto_mask",
    "to_losses",
]

#: The benchmark's nadir margin: the true front's nadir maps to 1 / HV_REGRET_MARGIN, the
#: reference point to 1, so that the front's extreme points still contribute volume.
HV_REGRET_MARGIN = 1.1

#: Upper bound on n^(m-2) (a proxy for point insertions) for exact hypervolume with m >= 4. At
#: the bound the slicing recursion takes a few seconds (4-D, 4000 points: about 5 s); beyond it
#: the time grows by a factor n per objective, and `hypervolume_mc` is the tool.
EXACT_HV_WORK_LIMIT = 20_000_000

# elements per temporary boolean block in the chunked pairwise computations (about 16 MB)
_CHUNK_ELEMENTS = 1 << 24


class MCEstimate(NamedTuple):
    """A Monte-Carlo hypervolume estimate with its standard error."""

    value: float
    stderr: float
    samples: int


# -- input handling -------------------------------------------------------------------------------


def _loss_matrix(F: ArrayLike, m: int | None = None, name: str = "F") -> np.ndarray:
    """``F`` as a float (n, m) copy with NaN replaced by +inf."""
    arr = np.array(F, dtype=float)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, m if m is not None else 0)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, m) array of losses, got shape {arr.shape}")
    if m is not None and arr.shape[1] != m:
        raise ValueError(f"{name} has {arr.shape[1]} objectives, expected {m}")
    arr[np.isnan(arr)] = np.inf
    return arr


def _reference(ref: ArrayLike, m: int | None = None) -> np.ndarray:
    r = np.asarray(ref, dtype=float).reshape(-1)
    if m is not None and r.shape[0] != m:
        raise ValueError(f"reference point has {r.shape[0]} coordinates, expected {m}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"reference point must be finite, got {r.tolist()}")
    return r


def to_losses(values: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """Raw objective values as a loss matrix (maximised columns negated).

    Args:
        values: (n, m) raw objective values.
        directions: ``"maximize"`` or ``"minimize"`` per column.

    Returns:
        (n, m) float array to minimise, NaN read as +inf (a failure stays a failure after
        negation).
    """
    F = np.array(values, dtype=float)
    if F.ndim == 1 and F.size == 0:
        F = F.reshape(0, len(directions))
    if F.ndim != 2 or F.shape[1] != len(directions):
        raise ValueError(f"values of shape {F.shape} do not match {len(directions)} directions")
    for k, d in enumerate(directions):
        if d == MAXIMIZE:
            F[:, k] = -F[:, k]
        elif d != MINIMIZE:
            raise ValueError(f"direction must be {MAXIMIZE!r} or {MINIMIZE!r}, got {d!r}")
    F[np.isnan(F)] = np.inf
    return F


# -- dominance and sorting ------------------------------------------------------------------------


def _dominance_matrix(F: np.ndarray) -> np.ndarray:
    """D[i, j] is True when row i Pareto-dominates row j (no worse everywhere, better somewhere)."""
    n, m = F.shape
    no_worse = np.ones((n, n), dtype=bool)
    better = np.zeros((n, n), dtype=bool)
    # one column at a time keeps the temporaries at n x n instead of n x n x m
    for k in range(m):
        col = F[:, k]
        no_worse &= col[:, None] <= col[None, :]
        better |= col[:, None] < col[None, :]
    return no_worse & better


def _peel(dom: np.ndarray) -> list[np.ndarray]:
    """Fronts of a strict partial order given as a dominance matrix (Deb's counting scheme)."""
    n = dom.shape[0]
    dominated_by = dom.sum(axis=0)
    assigned = np.zeros(n, dtype=bool)
    fronts: list[np.ndarray] = []
    front = np.flatnonzero(dominated_by == 0)
    while front.size:
        fronts.append(front)
        assigned[front] = True
        dominated_by = dominated_by - dom[front].sum(axis=0)
        front = np.flatnonzero((dominated_by == 0) & ~assigned)
    return fronts


def _sort_rows(F: np.ndarray) -> list[np.ndarray]:
    finite = np.all(np.isfinite(F), axis=1)
    fronts: list[np.ndarray] = []
    for group in (np.flatnonzero(finite), np.flatnonzero(~finite)):
        if group.size:
            fronts.extend(group[f] for f in _peel(_dominance_matrix(F[group])))
    return fronts


def non_dominated_sort(F: ArrayLike) -> list[np.ndarray]:
    """Fast non-dominated sort (Deb et al. 2002), vectorised.

    Row i dominates row j when it is no worse in every column and strictly better in one; equal
    rows never dominate each other and so share a front. Rows with a non-finite entry (NaN read
    as +inf) are sorted among themselves and placed after all finite rows.

    Args:
        F: (n, m) loss matrix.

    Returns:
        The fronts, best first, each an ascending array of row indices; together they partition
        ``range(n)``. Empty for n = 0.
    """
    return _sort_rows(_loss_matrix(F))


def constrained_non_dominated_sort(F: ArrayLike, violation: ArrayLike) -> list[np.ndarray]:
    """Non-dominated sort under Deb's constrained domination.

    A feasible row (violation 0) dominates every infeasible one; of two infeasible rows the one
    with the smaller violation dominates (equal violations tie, whatever the losses); feasible
    rows compare as in `non_dominated_sort`. Hence the feasible fronts come first, then one front
    per distinct violation value in increasing order.

    Args:
        F: (n, m) loss matrix.
        violation: (n,) non-negative total constraint violation; NaN is read as +inf.

    Returns:
        Fronts as in `non_dominated_sort`.
    """
    F = _loss_matrix(F)
    v = np.array(violation, dtype=float).reshape(-1)
    if v.shape[0] != F.shape[0]:
        raise ValueError(f"violation has {v.shape[0]} entries for {F.shape[0]} rows")
    v[np.isnan(v)] = np.inf
    if np.any(v < 0):
        raise ValueError("violation must be non-negative (0 means feasible)")
    feasible = np.flatnonzero(v == 0)
    fronts = [feasible[f] for f in _sort_rows(F[feasible])]
    infeasible = np.flatnonzero(v > 0)
    levels, group = np.unique(v[infeasible], return_inverse=True)
    fronts.extend(infeasible[group == g] for g in range(levels.size))
    return fronts


def pareto_mask(F: ArrayLike) -> np.ndarray:
    """Which rows no other row dominates.

    Duplicates of a non-dominated row are all kept. Rows with a non-finite entry are never in
    the mask (they are failures, not trade-offs); otherwise the mask is the first front of
    `non_dominated_sort`.

    Args:
        F: (n, m) loss matrix.

    Returns:
        (n,) boolean array.
    """
    F = _loss_matrix(F)
    m = F.shape[1]
    mask = np.all(np.isfinite(F), axis=1)
    cand = np.flatnonzero(mask)
    P = F[cand]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, P.shape[0]))
    for start in range(0, P.shape[0], chunk):
        rows = P[start : start + chunk]
        # D[i, j]: does row i of P dominate row j of this chunk (built one column at a time)
        no_worse = np.ones((P.shape[0], rows.shape[0]), dtype=bool)
        better = np.zeros_like(no_worse)
        for k in range(m):
            no_worse &= P[:, k, None] <= rows[None, :, k]
            better |= P[:, k, None] < rows[None, :, k]
        mask[cand[start : start + chunk]] = ~np.any(no_worse & better, axis=0)
    return mask


def pareto_front(values: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    """The Pareto-optimal rows of raw objective values.

    Args:
        values: (n, m) raw values, e.g. accuracy and latency.
        directions: ``"maximize"`` or ``"minimize"`` per column.

    Returns:
        The non-dominated rows of ``values`` in their original units and input order (duplicates
        kept, rows with NaN or inf dropped). Use ``pareto_mask(to_losses(values, directions))``
        for the indices.
    """
    mask = pareto_mask(to_losses(values, directions))
    return np.array(values, dtype=float).reshape(mask.shape[0], len(directions))[mask]


def crowding_distance(F: ArrayLike) -> np.ndarray:
    """NSGA-II crowding distance of the rows of one front.

    Per objective the rows are sorted; the two extreme rows get +inf and each other row adds the
    gap between its neighbours divided by the objective's range over the front. An objective of
    range 0 adds nothing (not even boundary infinities: no row is extreme in it), and non-finite
    entries take no part in their objective. Fronts of one or two rows are all +inf.

    Args:
        F: (n, m) losses of one front.

    Returns:
        (n,) non-negative distances, larger meaning less crowded.
    """
    F = _loss_matrix(F)
    n, m = F.shape
    if n <= 2:
        return np.full(n, np.inf)
    distance = np.zeros(n)
    for k in range(m):
        idx = np.flatnonzero(np.isfinite(F[:, k]))
        if idx.size == 0:
            continue
        idx = idx[np.argsort(F[idx, k], kind="stable")]
        col = F[idx, k]
        span = col[-1] - col[0]
        if span <= 0:
            continue
        distance[idx[0]] = distance[idx[-1]] = np.inf
        distance[idx[1:-1]] += (col[2:] - col[:-2]) / span
    return distance


# -- hypervolume ----------------------------------------------------------------------------------


def _inside(F: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rows that strictly dominate the reference point (the others bound no volume)."""
    return F[np.less(F, ref).all(axis=1)]


def _staircase(P: np.ndarray) -> np.ndarray:
    """The 2-D non-dominated points of P, x ascending and y strictly descending, no duplicates."""
    P = P[np.lexsort((P[:, 1], P[:, 0]))]
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], P[:-1, 1])))
    return P[P[:, 1] < best_before]


def _hv2d(P: np.ndarray, ref: np.ndarray) -> float:
    S = _staircase(P)
    widths = np.diff(np.append(S[:, 0], ref[0]))
    return float(np.sum(widths * (ref[1] - S[:, 1])))


def _hv3d(P: np.ndarray, ref: np.ndarray) -> float:
    """Sweep along z keeping the 2-D staircase of the points seen so far and its area."""
    P = P[np.argsort(P[:, 2], kind="stable")]
    rx, ry, rz = (float(r) for r in ref)
    xs_in, ys_in, zs = P[:, 0].tolist(), P[:, 1].tolist(), P[:, 2].tolist()
    xs: list[float] = []  # staircase, x ascending
    ys: list[float] = []  # y strictly descending
    area = volume = 0.0
    n = len(zs)
    for i in range(n):
        px, py = xs_in[i], ys_in[i]
        k = bisect_right(xs, px)
        # the staircase point with the largest x <= px has the smallest y among those: if it is
        # no higher than p, p is weakly dominated in (x, y) and adds no area from here on
        if not (k > 0 and ys[k - 1] <= py):
            j = bisect_left(xs, px)
            height = ys[j - 1] if j > 0 else ry
            x = px
            e = j
            while e < len(xs) and ys[e] >= py:
                area += (xs[e] - x) * (height - py)
                x, height = xs[e], ys[e]
                e += 1
            area += ((xs[e] if e < len(xs) else rx) - x) * (height - py)
            xs[j:e] = [px]
            ys[j:e] = [py]
        volume += area * ((zs[i + 1] if i + 1 < n else rz) - zs[i])
    return volume


def _hv_slices(P: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume for m >= 4: slabs along the last axis, each a (m-1)-D hypervolume."""
    m = P.shape[1]
    if m == 3:
        return _hv3d(P, ref)
    P = P[pareto_mask(P)]
    P = P[np.argsort(P[:, -1], kind="stable")]
    z = P[:, -1]
    thickness = np.append(z[1:], ref[-1]) - z
    volume = 0.0
    for i in range(P.shape[0]):
        if thickness[i] > 0:
            volume += thickness[i] * _hv_slices(P[: i + 1, :-1], ref[:-1])
    return volume


def hypervolume(F: ArrayLike, ref: ArrayLike) -> float:
    """Exact hypervolume dominated by ``F`` and bounded by ``ref``.

    The Lebesgue measure of the union of the boxes ``[f, ref]``; rows that do not strictly
    dominate ``ref`` (including non-finite ones) contribute nothing, and dominated or duplicate
    rows change nothing.

    Args:
        F: (n, m) loss matrix.
        ref: (m,) finite reference point.

    Returns:
        The hypervolume (0.0 when no row is inside the reference box).

    Raises:
        ValueError: on malformed input, or for m >= 4 when the exact computation (about
            n^(m-2) point insertions, n counting non-dominated rows) would exceed
            `EXACT_HV_WORK_LIMIT`; use `hypervolume_mc` then.
    """
    r = _reference(ref)
    P = _inside(_loss_matrix(F, r.shape[0]), r)
    m = r.shape[0]
    if P.shape[0] == 0 or m == 0:
        return 0.0
    if m == 1:
        return float(r[0] - P[:, 0].min())
    if m == 2:
        return _hv2d(P, r)
    if m == 3:
        return _hv3d(P, r)
    P = P[pareto_mask(P)]
    work = float(P.shape[0]) ** (m - 2)
    if work > EXACT_HV_WORK_LIMIT:
        raise ValueError(
            f"exact hypervolume of {P.shape[0]} non-dominated points in {m} dimensions needs "
            f"about {work:.2g} steps (limit {EXACT_HV_WORK_LIMIT:.2g}); use hypervolume_mc(F, "
            "ref) for a Monte-Carlo estimate with a standard error"
        )
    return _hv_slices(P, r)


def hypervolume_mc(
    F: ArrayLike,
    ref: ArrayLike,
    samples: int = 100_000,
    rng: np.random.Generator | int | None = None,
) -> MCEstimate:
    """Monte-Carlo hypervolume estimate for any number of objectives.

    Samples uniformly in the box spanned by the ideal point of the rows inside the reference
    box and ``ref`` (the smallest box holding the whole dominated region, so no sample is
    wasted outside it), and scales the hit fraction by the box volume.

    Args:
        F: (n, m) loss matrix.
        ref: (m,) finite reference point.
        samples: number of uniform samples.
        rng: a generator or a seed; None draws fresh entropy.

    Returns:
        `MCEstimate` with the estimate, its binomial standard error and the sample count.
    """
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")
    r = _reference(ref)
    P = _inside(_loss_matrix(F, r.shape[0]), r)
    if P.shape[0] == 0:
        return MCEstimate(0.0, 0.0, samples)
    P = P[pareto_mask(P)]
    gen = np.random.default_rng(rng)
    low = P.min(axis=0)
    box = float(np.prod(r - low))
    m = r.shape[0]
    hits = 0
    chunk = max(1, _CHUNK_ELEMENTS // (P.shape[0] * m))
    for start in range(0, samples, chunk):
        u = low + gen.random((min(chunk, samples - start), m)) * (r - low)
        hits += int(np.count_nonzero(np.any(np.all(P[None, :, :] <= u[:, None, :], axis=2), 1)))
    p = hits / samples
    return MCEstimate(box * p, box * math.sqrt(p * (1.0 - p) / samples), samples)


def hypervolume_contributions(F: ArrayLike, ref: ArrayLike) -> np.ndarray:
    """Exclusive hypervolume contribution of each row: HV(F) - HV(F without that row).

    Dominated rows, rows outside the reference box and every copy of a duplicated point
    contribute 0 (removing one copy loses nothing); a row that shadows dominated rows
    contributes only what they do not cover themselves. In 2-D (SMS-EMOA's selection) one
    O(n log n) sweep; for m >= 3 one exact hypervolume per unique non-dominated row.

    Args:
        F: (n, m) loss matrix.
        ref: (m,) finite reference point.

    Returns:
        (n,) non-negative contributions.
    """
    r = _reference(ref)
    F = _loss_matrix(F, r.shape[0])
    n, m = F.shape
    out = np.zeros(n)
    inside = np.flatnonzero(np.less(F, r).all(axis=1))
    if inside.size == 0:
        return out
    if m != 2:
        P = F[inside]
        cand = np.flatnonzero(pareto_mask(P))
        _, first, counts = np.unique(P[cand], axis=0, return_index=True, return_counts=True)
        total = hypervolume(P, r)
        for i in cand[first[counts == 1]]:
            out[inside[i]] = total - hypervolume(np.delete(P, i, axis=0), r)
        return np.maximum(out, 0.0)
    order = inside[np.lexsort((F[inside, 1], F[inside, 0]))]
    x, y = F[order, 0], F[order, 1]
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], y[:-1])))
    on_stairs = y < best_before
    sx, sy = x[on_stairs], y[on_stairs]
    right = np.append(sx[1:], r[0])
    above = np.concatenate(([r[1]], sy[:-1]))
    contrib = (right - sx) * (above - sy)
    # Removing a staircase point uncovers only its rectangle [x, right) x [y, above), and there
    # only what the rows it weakly dominates (twins included) do not cover themselves; every
    # off-staircase row inside the reference box falls in the rectangle of the last staircase
    # point at or left of it, or in none.
    qx, qy = x[~on_stairs], y[~on_stairs]
    owner = np.searchsorted(sx, qx, side="right") - 1
    shadowed = qy < above[owner]
    for k in np.unique(owner[shadowed]):
        Q = np.column_stack([qx, qy])[shadowed & (owner == k)]
        contrib[k] -= _hv2d(Q, np.array([right[k], above[k]]))
    out[order[on_stairs]] = np.maximum(contrib, 0.0)
    return out


# -- distances to a reference front ---------------------------------------------------------------


def _mean_min_distance(F: ArrayLike, reference_front: ArrayLike, plus: bool) -> float:
    Z = _loss_matrix(reference_front, name="reference_front")
    if Z.shape[0] == 0:
        raise ValueError("reference_front is empty")
    if not np.all(np.isfinite(Z)):
        raise ValueError("reference_front must be finite")
    A = _loss_matrix(F, Z.shape[1])
    A = A[np.all(np.isfinite(A), axis=1)]
    if A.shape[0] == 0:
        return math.inf
    best = np.empty(Z.shape[0])
    chunk = max(1, _CHUNK_ELEMENTS // (A.shape[0] * Z.shape[1]))
    for start in range(0, Z.shape[0], chunk):
        diff = A[None, :, :] - Z[start : start + chunk, None, :]
        if plus:
            # IGD+ only counts how far a point is worse than the reference point
            diff = np.maximum(diff, 0.0)
        best[start : start + chunk] = np.sqrt(np.min(np.sum(diff * diff, axis=2), axis=1))
    return float(best.mean())


def igd(F: ArrayLike, reference_front: ArrayLike) -> float:
    """Inverted generational distance.

    Args:
        F: (n, m) losses of the approximation; non-finite rows are ignored.
        reference_front: (r, m) finite losses sampling the true front.

    Returns:
        Mean over reference points of the Euclidean distance to the nearest row of ``F``
        (+inf when ``F`` has no finite row).
    """
    return _mean_min_distance(F, reference_front, plus=False)


def igd_plus(F: ArrayLike, reference_front: ArrayLike) -> float:
    """IGD+ (Ishibuchi et al. 2015): IGD with the dominance-aware distance.

    The distance from reference point z to a row a is ``||max(a - z, 0)||``, so a row that
    dominates z is at distance 0; unlike IGD, IGD+ is weakly Pareto compliant.

    Args:
        F: (n, m) losses of the approximation; non-finite rows are ignored.
        reference_front: (r, m) finite losses sampling the true front.

    Returns:
        The mean over reference points of the distance to the nearest row (+inf when ``F`` has
        no finite row).
    """
    return _mean_min_distance(F, reference_front, plus=True)


# -- normalisation and regret ---------------------------------------------------------------------


def normalize(F: ArrayLike, ideal: ArrayLike, nadir: ArrayLike) -> np.ndarray:
    """Maps ``ideal`` to 0 and ``nadir`` to 1 in every column.

    Args:
        F: (n, m) loss matrix.
        ideal: (m,) per-column best values.
        nadir: (m,) per-column worst values.

    Returns:
        (n, m) ``(F - ideal) / (nadir - ideal)``; a column with ``nadir == ideal`` is only
        shifted (divided by 1), since any other unit would be arbitrary too.
    """
    lo = _reference(ideal)
    hi = _reference(nadir, lo.shape[0])
    span = hi - lo
    return (_loss_matrix(F, lo.shape[0]) - lo) / np.where(span == 0, 1.0, span)


def hv_regret(
    F_found: ArrayLike,
    F_true_front: ArrayLike,
    *,
    directions: Sequence[str] | None = None,
) -> float:
    """Normalised hypervolume regret, exactly as the project's benchmark reports it.

    Both sets are normalised by the true front: its ideal point maps to 0 and its nadir to
    ``1 / 1.1`` (scale ``(nadir - ideal) * 1.1``; a column where the front does not vary uses a
    scale of 1.1 raw units), the reference point is all ones, and the regret is
    ``1 - HV(found) / HV(true front)``. Found points outside the reference box contribute
    nothing, so a found set that misses the box entirely scores 1.

    Args:
        F_found: (n, m) losses of the solutions a strategy found (any set: dominated and failed
            rows are harmless).
        F_true_front: (t, m) losses of the true Pareto front; dominated and non-finite rows are
            dropped before taking the ideal and nadir.
        directions: if given, both arrays hold raw values and are converted with `to_losses`.

    Returns:
        0 for a set as good as the true front, up to 1 for one that adds no volume; negative
        only if ``F_found`` beats the supposed true front.
    """
    if directions is not None:
        found = to_losses(F_found, directions)
        true = to_losses(F_true_front, directions)
    else:
        true = _loss_matrix(F_true_front, name="F_true_front")
        found = _loss_matrix(F_found, true.shape[1], name="F_found")
    true = true[pareto_mask(true)]
    if true.shape[0] == 0:
        raise ValueError("the true front has no finite non-dominated point")
    ideal = true.min(axis=0)
    span = true.max(axis=0) - ideal
    scale = np.where(span == 0, 1.0, span) * HV_REGRET_MARGIN
    ref = np.ones(true.shape[1])
    hv_true = hypervolume((true - ideal) / scale, ref)
    hv_found = hypervolume((found - ideal) / scale, ref)
    return 1.0 - hv_found / hv_true
