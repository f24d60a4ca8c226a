"""Scaling-law fitting (mixnas.scaling.laws): recovers known parameters, intervals, comparison."""

from __future__ import annotations

import numpy as np
import pytest

from mixnas.scaling.laws import compare, fit_power_law
from search_space.errors import SpaceError

X = np.array([1e5, 3e5, 1e6, 3e6, 1e7, 3e7])


def _points(a, b, c, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return X, a * X ** (-b) + c + noise * rng.standard_normal(len(X))


def test_offset_form_recovers_known_parameters():
    x, y = _points(40.0, 0.3, 0.25)
    law = fit_power_law(x, y, bootstrap=20)
    assert law.b == pytest.approx(0.3, rel=1e-3)
    assert law.c == pytest.approx(0.25, rel=1e-3)
    assert law.a == pytest.approx(40.0, rel=1e-2)
    assert law.predict(1e8) == pytest.approx(40.0 * 1e8**-0.3 + 0.25, rel=1e-3)


def test_plain_form_recovers_known_parameters():
    x, y = _points(12.0, 0.2, 0.0)
    law = fit_power_law(x, y, form="plain", bootstrap=10)
    assert (law.a, law.b, law.c) == (pytest.approx(12.0, rel=1e-6), pytest.approx(0.2), 0.0)


def test_intervals_cover_truth_and_widen_with_noise():
    x, y = _points(40.0, 0.3, 0.25, noise=0.01, seed=1)
    law = fit_power_law(x, y, bootstrap=300, seed=0)
    lo, hi = law.ci(0.95)["b"]
    assert lo <= 0.3 <= hi
    p_lo, p_hi = law.interval(1e8, 0.95)
    assert p_lo < law.predict(1e8) < p_hi
    x, y2 = _points(40.0, 0.3, 0.25, noise=0.05, seed=1)
    noisy = fit_power_law(x, y2, bootstrap=300, seed=0)
    width = lambda lw: np.subtract(*lw.interval(1e8, 0.9)[::-1])  # noqa: E731
    assert width(noisy) > width(law)


def test_prediction_of_the_held_out_largest_size():
    x, y = _points(40.0, 0.3, 0.25, noise=0.002, seed=3)
    law = fit_power_law(x[:-1], y[:-1], bootstrap=50)
    truth = 40.0 * x[-1] ** -0.3 + 0.25
    assert abs(float(law.predict(x[-1])) - truth) < 0.02


def test_compare_prefers_the_lower_curve():
    x, worse = _points(40.0, 0.3, 0.30, noise=0.003, seed=0)
    _, better = _points(40.0, 0.3, 0.20, noise=0.003, seed=1)
    a, b = fit_power_law(x, better, bootstrap=100), fit_power_law(x, worse, bootstrap=100)
    out = compare(a, b, 1e8)
    assert out["first"] < out["second"] and out["p_first_lower"] > 0.9
    assert compare(b, a, 1e8)["p_first_lower"] < 0.1


@pytest.mark.parametrize(
    ("x", "y", "form", "field"),
    [
        ([1, 2], [1.0, 0.5], "offset", "points.x"),
        ([1, 2, 3], [1.0, 0.5], "offset", "points"),
        ([1, -2, 3], [1.0, 0.5, 0.3], "plain", "points.x"),
        ([1, 2, 3], [1.0, 0.0, 0.3], "plain", "points.y"),
        ([1, 2, 3], [1.0, 0.5, 0.3], "cubic", "form"),
    ],
)
def test_bad_points_raise(x, y, form, field):
    with pytest.raises(SpaceError) as err:
        fit_power_law(x, y, form=form)
    assert err.value.field == field
