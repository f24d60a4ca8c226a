"""Scaling laws: fit L(C) = a C^-b + c (or a C^-b) to (compute or params, loss or error) points.

Who calls what: `bench/scaling.py` (and users) train a family at several sizes, call
`fit_power_law(x, y)` per design, `law.predict(x_next)` / `law.interval(x_next)` to extrapolate
one size up, and `compare(law_a, law_b, x)` to say which design's curve is lower there.

The form with an irreducible offset c is the one Kaplan et al. ("Scaling Laws for Neural Language
Models", 2020) and Hoffmann et al. ("Training Compute-Optimal Large Language Models", 2022) fit;
Primer (So et al., "Primer: Searching for Efficient Transformers for Language Modeling", 2021)
compares designs by such fitted curves. With few points (a family of 3-5 sizes) the offset is
poorly determined, so the offset-free form (a straight line in log-log) is offered too.

Confidence intervals come from a residual bootstrap (resample the fit's residuals onto the fitted
curve and refit): with 3-5 points, resampling the points themselves would often leave fewer
distinct sizes than parameters.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from search_space.errors import SpaceError

FORMS = ("offset", "plain")


@dataclass(frozen=True)
class PowerLaw:
    """A fitted L(x) = a x^-b + c (c = 0 for the ``plain`` form) with bootstrap samples.

    ``samples`` holds one (a, b, c) row per bootstrap refit; intervals are their quantiles.
    """

    a: float
    b: float
    c: float
    form: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    samples: np.ndarray

    def predict(self, x: float | Sequence[float] | np.ndarray) -> np.ndarray:
        xs = np.asarray(x, dtype=float)
        return self.a * xs ** (-self.b) + self.c

    def interval(self, x: float, confidence: float = 0.9) -> tuple[float, float]:
        """The bootstrap interval of the prediction at ``x``."""
        preds = self.samples[:, 0] * float(x) ** (-self.samples[:, 1]) + self.samples[:, 2]
        lo, hi = np.quantile(preds, [(1 - confidence) / 2, (1 + confidence) / 2])
        return float(lo), float(hi)

    def ci(self, confidence: float = 0.9) -> dict[str, tuple[float, float]]:
        """Bootstrap intervals of a, b and c."""
        q = [(1 - confidence) / 2, (1 + confidence) / 2]
        out = {}
        for i, name in enumerate("abc"):
            lo, hi = np.quantile(self.samples[:, i], q)
            out[name] = (float(lo), float(hi))
        return out

    @property
    def rmse(self) -> float:
        resid = np.asarray(self.y) - self.predict(np.asarray(self.x))
        return float(np.sqrt(np.mean(resid**2)))

    def to_dict(self, confidence: float = 0.9) -> dict[str, object]:
        return {
            "form": self.form,
            "a": self.a,
            "b": self.b,
            "c": self.c,
            "ci": {k: list(v) for k, v in self.ci(confidence).items()},
            "confidence": confidence,
            "rmse": self.rmse,
            "n": len(self.x),
        }


def _check(x: Sequence[float], y: Sequence[float], form: str) -> tuple[np.ndarray, np.ndarray]:
    if form not in FORMS:
        raise SpaceError("form", f"must be one of {', '.join(FORMS)}", value=form)
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise SpaceError("points", "x and y must be equally long lists of numbers")
    need = 3 if form == "offset" else 2
    if len(np.unique(xs)) < need:
        raise SpaceError(
            "points.x", f"the {form} form needs at least {need} distinct sizes", value=list(x)
        )
    if not np.all(np.isfinite(xs)) or np.any(xs <= 0):
        raise SpaceError("points.x", "sizes must be finite numbers > 0", value=list(x))
    if not np.all(np.isfinite(ys)) or np.any(ys <= 0):
        raise SpaceError("points.y", "losses/errors must be finite numbers > 0", value=list(y))
    return xs, ys


def _fit_once(xs: np.ndarray, ys: np.ndarray, form: str) -> tuple[float, float, float]:
    """Least squares on the normalized sizes (x / geometric mean) for conditioning."""
    x0 = float(np.exp(np.mean(np.log(xs))))
    u = xs / x0
    if form == "plain":
        slope, intercept = np.polyfit(np.log(u), np.log(ys), 1)
        b = -float(slope)
        return float(math.exp(intercept)) * x0**b, b, 0.0
    from scipy.optimize import curve_fit

    def f(u_: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
        return a * u_ ** (-b) + c

    # start from the plain fit of y - c0, with c0 half the smallest loss
    c0 = 0.5 * float(ys.min())
    slope, intercept = np.polyfit(np.log(u), np.log(np.maximum(ys - c0, 1e-12)), 1)
    p0 = [math.exp(intercept), max(1e-3, -float(slope)), c0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an ill-determined covariance is expected with 3 points
        try:
            (a, b, c), _ = curve_fit(
                f,
                u,
                ys,
                p0=p0,
                bounds=([0.0, 0.0, 0.0], [np.inf, 10.0, float(ys.max())]),
                maxfev=20000,
            )
        except RuntimeError:  # no convergence: keep the starting point, which fits reasonably
            a, b, c = p0
    return float(a) * x0 ** float(b), float(b), float(c)


def fit_power_law(
    x: Sequence[float],
    y: Sequence[float],
    *,
    form: str = "offset",
    bootstrap: int = 200,
    seed: int = 0,
) -> PowerLaw:
    """Fits ``form`` ("offset": a x^-b + c; "plain": a x^-b) to the points, with ``bootstrap``
    residual-bootstrap refits for intervals. Raises `SpaceError` on bad points."""
    xs, ys = _check(x, y, form)
    a, b, c = _fit_once(xs, ys, form)
    fitted = a * xs ** (-b) + c
    rng = np.random.default_rng(seed)
    rows = []
    if form == "plain":  # multiplicative noise: resample residuals in log space
        resid = np.log(ys) - np.log(fitted)
        for _ in range(bootstrap):
            rows.append(_fit_once(xs, fitted * np.exp(rng.choice(resid, len(xs))), form))
    else:
        resid = ys - fitted
        for _ in range(bootstrap):
            yb = np.maximum(fitted + rng.choice(resid, len(xs)), 1e-12)
            rows.append(_fit_once(xs, yb, form))
    samples = np.asarray(rows, dtype=float).reshape(-1, 3) if rows else np.array([[a, b, c]])
    return PowerLaw(a, b, c, form, tuple(map(float, xs)), tuple(map(float, ys)), samples)


def compare(first: PowerLaw, second: PowerLaw, x: float) -> dict[str, float]:
    """Both designs' predicted loss at size ``x``, and the bootstrap probability that the first
    design's curve is lower there (samples paired by index; both fits' samples are independent)."""
    n = min(len(first.samples), len(second.samples))

    def preds(law: PowerLaw) -> np.ndarray:
        s = law.samples[:n]
        return s[:, 0] * float(x) ** (-s[:, 1]) + s[:, 2]

    return {
        "x": float(x),
        "first": float(first.predict(x)),
        "second": float(second.predict(x)),
        "p_first_lower": float(np.mean(preds(first) < preds(second))),
    }
