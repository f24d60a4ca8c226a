"""Pareto sorting, crowding, hypervolume and regret against brute-force definitions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strategies.multiobjective import (
    EXACT_HV_WORK_LIMIT,
    HV_REGRET_MARGIN,
    constrained_non_dominated_sort,
    crowding_distance,
    hv_regret,
    hypervolume,
    hypervolume_contributions,
    hypervolume_mc,
    igd,
    igd_plus,
    non_dominated_sort,
    normalize,
    pareto_front,
    pareto_mask,
    to_losses,
)

FAST = settings(max_examples=60, deadline=None)


def int_matrices(max_n: int = 12, m: tuple[int, int] = (1, 4), hi: int = 4, special: bool = False):
    """Small integer loss matrices: a narrow value range makes ties and duplicates common."""
    values = st.integers(0, hi).map(float)
    if special:
        values = values | st.sampled_from([math.inf, math.nan])
    return st.tuples(st.integers(0, max_n), st.integers(*m)).flatmap(
        lambda shape: arrays(float, shape, elements=values)
    )


# -- brute-force definitions ----------------------------------------------------------------------


def _pareto_dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    # the module's contract: NaN is +inf and any non-finite row is behind every finite one
    a, b = np.where(np.isnan(a), np.inf, a), np.where(np.isnan(b), np.inf, b)
    fa, fb = bool(np.all(np.isfinite(a))), bool(np.all(np.isfinite(b)))
    if fa != fb:
        return fa
    return _pareto_dominates(a, b)


def _brute_fronts(n: int, dominates) -> list[list[int]]:
    """Fronts by repeatedly removing the rows nothing left dominates."""
    left = list(range(n))
    fronts = []
    while left:
        front = [j for j in left if not any(dominates(i, j) for i in left if i != j)]
        fronts.append(front)
        left = [j for j in left if j not in front]
    return fronts


def _as_lists(fronts: list[np.ndarray]) -> list[list[int]]:
    return [f.tolist() for f in fronts]


def _grid_volume(P: np.ndarray, ref: np.ndarray) -> int:
    """Unit cells [c, c + 1] of the integer grid below ref that some point weakly dominates."""
    cells = np.array(list(itertools.product(*(range(int(r)) for r in ref))), dtype=float)
    if P.shape[0] == 0 or cells.shape[0] == 0:
        return 0
    covered = np.any(np.all(P[None, :, :] <= cells[:, None, :], axis=2), axis=1)
    return int(covered.sum())


# -- sorting --------------------------------------------------------------------------------------


@FAST
@given(int_matrices(special=True))
def test_non_dominated_sort_matches_brute_force(F):
    fronts = non_dominated_sort(F)
    assert _as_lists(fronts) == _brute_fronts(len(F), lambda i, j: _dominates(F[i], F[j]))
    assert sorted(np.concatenate([*fronts, np.zeros(0, int)]).tolist()) == list(range(len(F)))


def test_non_dominated_sort_puts_failures_last_and_keeps_duplicates_together():
    F = np.array([[0.0, math.inf], [1, 1], [1, 1], [2, 2], [math.nan, math.nan], [3, 0]])
    assert _as_lists(non_dominated_sort(F)) == [[1, 2, 5], [3], [0], [4]]
    assert non_dominated_sort(np.zeros((0, 2))) == []


@FAST
@given(int_matrices(special=True), st.data())
def test_constrained_sort_matches_brute_force(F, data):
    n = len(F)
    v = np.array(
        data.draw(st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, math.inf]), min_size=n, max_size=n))
    )

    def dominates(i: int, j: int) -> bool:
        if v[i] == 0 and v[j] == 0:
            return _dominates(F[i], F[j])
        return bool(v[i] < v[j])

    assert _as_lists(constrained_non_dominated_sort(F, v)) == _brute_fronts(n, dominates)


def test_constrained_sort_rejects_bad_violation():
    with pytest.raises(ValueError, match="non-negative"):
        constrained_non_dominated_sort([[0.0, 1.0]], [-1.0])
    with pytest.raises(ValueError, match="entries"):
        constrained_non_dominated_sort([[0.0, 1.0]], [0.0, 0.0])


@FAST
@given(int_matrices(special=True))
def test_pareto_mask_is_first_finite_front(F):
    finite = np.all(np.isfinite(F), axis=1)
    expected = [
        bool(finite[j]) and not any(_pareto_dominates(F[i], F[j]) for i in np.flatnonzero(finite))
        for j in range(len(F))
    ]
    assert pareto_mask(F).tolist() == expected


def test_pareto_front_from_raw_values():
    # accuracy (max), latency (min): (0.9, 5) and (0.8, 2) trade off, (0.7, 3) loses to (0.8, 2)
    values = [[0.9, 5.0], [0.7, 3.0], [0.8, 2.0], [0.8, 2.0], [math.nan, 1.0]]
    front = pareto_front(values, ["maximize", "minimize"])
    np.testing.assert_array_equal(front, [[0.9, 5.0], [0.8, 2.0], [0.8, 2.0]])
    np.testing.assert_array_equal(to_losses([[1.0, 2.0]], ["maximize", "minimize"]), [[-1, 2]])
    with pytest.raises(ValueError, match="direction"):
        to_losses([[1.0]], ["up"])


# -- crowding -------------------------------------------------------------------------------------


def test_crowding_distance_of_known_front():
    F = np.array([[4.0, 1.0], [0.0, 6.0], [5.0, 0.0], [1.0, 3.0]])
    d = crowding_distance(F)
    # ranges 5 and 6; (1, 3): 4/5 + 5/6, (4, 1): 4/5 + 3/6
    np.testing.assert_allclose(d, [0.8 + 0.5, math.inf, math.inf, 0.8 + 5 / 6])
    np.testing.assert_allclose(crowding_distance(F[::-1]), d[::-1])


def test_crowding_distance_edge_cases():
    assert crowding_distance(np.zeros((0, 2))).shape == (0,)
    assert np.all(np.isinf(crowding_distance([[1.0, 2.0]])))
    assert np.all(np.isinf(crowding_distance([[1.0, 2.0], [2.0, 1.0]])))
    # a constant objective neither divides by zero nor marks boundaries
    np.testing.assert_allclose(
        crowding_distance([[0.0, 7.0], [1.0, 7.0], [3.0, 7.0]]), [math.inf, 1.0, math.inf]
    )
    np.testing.assert_array_equal(crowding_distance(np.ones((4, 3))), np.zeros(4))


# -- hypervolume ----------------------------------------------------------------------------------


def test_hypervolume_known_configurations():
    assert hypervolume([[1.0, 1.0]], [3.0, 3.0]) == 4.0
    assert hypervolume([[1.0, 2.0], [2.0, 1.0]], [3.0, 3.0]) == 3.0
    # three unit-offset corners of the 2-cube cover all but the cube [0, 1]^3
    assert hypervolume([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]], [2.0, 2, 2]) == 7.0
    assert hypervolume(np.zeros((0, 3)), [1.0, 1, 1]) == 0.0
    assert hypervolume([[2.0, 0.0], [0.0, 3.0], [math.nan, 0.0]], [2.0, 3.0]) == 0.0
    assert hypervolume([[0.5]], [2.0]) == 1.5
    assert hypervolume([[0.0] * 4], [1.0, 2, 3, 4]) == 24.0
    with pytest.raises(ValueError, match="finite"):
        hypervolume([[0.0, 0.0]], [1.0, math.inf])


@FAST
@given(int_matrices(max_n=10, m=(2, 4), hi=5))
def test_hypervolume_matches_grid_count(F):
    ref = np.full(F.shape[1], 5.0)
    assert hypervolume(F, ref) == pytest.approx(_grid_volume(F, ref))


@FAST
@given(int_matrices(max_n=10, m=(2, 3), hi=5), st.data())
def test_hypervolume_ignores_dominated_points(F, data):
    ref = np.full(F.shape[1], 6.0)
    if len(F) == 0:
        return
    base = F[data.draw(st.integers(0, len(F) - 1))]
    worse = base + np.array(
        data.draw(st.lists(st.integers(0, 3), min_size=F.shape[1], max_size=F.shape[1]))
    )
    assert hypervolume(np.vstack([F, worse, base]), ref) == pytest.approx(hypervolume(F, ref))


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_hypervolume_matches_optuna(m):
    hv_module = pytest.importorskip("optuna._hypervolume")
    compute = getattr(hv_module, "compute_hypervolume", None)
    if compute is None:
        pytest.skip("optuna does not expose compute_hypervolume")
    rng = np.random.default_rng(m)
    n = {2: 300, 3: 200, 4: 40, 5: 15}[m]
    F = rng.random((n, m))
    # points on a sphere make most of them non-dominated, the hard case
    F[: n // 2] = 1.0 - np.abs(rng.normal(size=(n // 2, m)))
    F[: n // 2] /= np.linalg.norm(F[: n // 2], axis=1, keepdims=True) + 1.0
    ref = np.full(m, 1.1)
    # optuna refuses points beyond the reference; clipped ones bound no volume either way
    expected = compute(np.minimum(F, ref), ref)
    assert hypervolume(F, ref) == pytest.approx(expected, rel=1e-10)


def test_hypervolume_refuses_huge_exact_problems():
    n = int(EXACT_HV_WORK_LIMIT ** (1 / 3)) + 10
    x = np.linspace(0.0, 1.0, n)
    F = np.column_stack([x, 1 - x, x, 1 - x, np.zeros(n)])
    with pytest.raises(ValueError, match="hypervolume_mc"):
        hypervolume(F, np.full(5, 2.0))


def test_hypervolume_mc_within_three_standard_errors():
    rng = np.random.default_rng(0)
    F = rng.random((30, 3))
    ref = np.full(3, 1.2)
    exact = hypervolume(F, ref)
    est = hypervolume_mc(F, ref, samples=100_000, rng=1)
    assert est.stderr > 0
    assert abs(est.value - exact) < 3 * est.stderr
    assert hypervolume_mc([[2.0, 2.0, 2.0]], ref, rng=0).value == 0.0


@FAST
@given(int_matrices(max_n=10, m=(2, 3), hi=5))
def test_hypervolume_contributions_are_leave_one_out(F):
    ref = np.full(F.shape[1], 5.0)
    contrib = hypervolume_contributions(F, ref)
    total = hypervolume(F, ref)
    expected = [total - hypervolume(np.delete(F, i, axis=0), ref) for i in range(len(F))]
    np.testing.assert_allclose(contrib, expected, atol=1e-12)


# -- distances, normalisation, regret -------------------------------------------------------------


def test_igd_and_igd_plus():
    front = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    assert igd(front, front) == 0.0
    assert igd_plus(front[::-1], front) == 0.0
    assert igd([[0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]) == 1.0
    # a point dominating every reference point is at IGD+ distance 0
    assert igd_plus([[0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]) == 0.0
    assert igd([[1.0, 1.0]], [[0.0, 0.0]]) == pytest.approx(math.sqrt(2))
    assert igd_plus([[1.0, 1.0]], [[0.0, 0.0]]) == pytest.approx(math.sqrt(2))
    assert igd(np.zeros((0, 2)), front) == math.inf


def test_normalize_maps_ideal_and_nadir():
    out = normalize([[1.0, 5.0, 3.0], [3.0, 9.0, 3.0]], [1.0, 5.0, 3.0], [3.0, 9.0, 3.0])
    np.testing.assert_allclose(out, [[0, 0, 0], [1, 1, 0]])


def test_hv_regret():
    true = np.array([[0.0, 1.0], [1.0, 0.0], [0.25, 0.5]])
    assert hv_regret(true, true) == pytest.approx(0.0, abs=1e-12)
    assert hv_regret(np.vstack([true, [[2.0, 2.0]]]), true) == pytest.approx(0.0, abs=1e-12)
    assert hv_regret(np.zeros((0, 2)), true) == 1.0
    assert hv_regret([[5.0, 5.0]], true) == 1.0
    partial = hv_regret(true[:1], true)
    assert 0.0 < partial < 1.0

    # by hand: front (0, 1), (1, 0) normalises to (0, a), (a, 0) with a = 1 / 1.1
    a = 1 / HV_REGRET_MARGIN
    hv_true = a * (1 - a) + (1 - a) * 1
    assert hv_regret([[0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]) == pytest.approx(1 - (1 - a) / hv_true)

    # raw values: maximise accuracy, minimise latency
    raw_true = [[0.9, 10.0], [0.8, 5.0]]
    assert hv_regret(raw_true, raw_true, directions=["maximize", "minimize"]) == pytest.approx(0)
    assert 0 < hv_regret([[0.8, 5.0]], raw_true, directions=["maximize", "minimize"]) < 1


@FAST
@given(int_matrices(max_n=10, m=(2, 3), hi=6), st.data())
def test_hv_regret_of_subsets_is_between_zero_and_one(F, data):
    true = F[pareto_mask(F)]
    if len(true) == 0:
        return
    keep = data.draw(st.lists(st.booleans(), min_size=len(F), max_size=len(F)))
    found = F[np.array(keep, dtype=bool)]
    assert -1e-12 <= hv_regret(found, true) <= 1.0 + 1e-12
