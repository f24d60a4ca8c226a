"""The correction that turns a sum of op estimates into a network latency.

``latency = a * estimate + b * ops + c`` with a, b, c >= 0 (a summed table or roofline can only
be scaled, and every op and every call only add time), fitted by non-negative least squares on
relative errors: each row is divided by its target so that a 1 ms model counts as much as a
100 ms one. Used by the lookup table and the roofline device models.
"""

from __future__ import annotations

import numpy as np


def design(estimate: np.ndarray, ops: np.ndarray) -> np.ndarray:
    return np.column_stack([estimate, ops, np.ones_like(estimate)])


def fit_correction(
    estimate: np.ndarray, ops: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, float]:
    """Coefficients (a, b, c) and the root-mean-square relative error of the fit."""
    from scipy.optimize import nnls

    d = design(estimate, ops)
    coef, _ = nnls(d / y[:, None], np.ones_like(y))
    rel = d @ coef / y - 1.0
    return coef, float(np.sqrt(np.mean(rel**2)))


IDENTITY = np.array([1.0, 0.0, 0.0])
