"""A small exact Gaussian process over fixed-length architecture encodings (pure numpy).

The kernel is ``exp(-h / lengthscale)`` where ``h`` is the Hamming distance between decision
vectors (half the squared distance between their one-hot encodings): the categorical kernel of
COMBO/CoCaBO-style Bayesian optimisation, which suits spaces of unordered choices. Hyper-
parameters (lengthscale, noise) are chosen by maximising the log marginal likelihood over a small
grid, which is robust with the few dozen to few hundred points a NAS run has.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve, solve_triangular

LENGTHSCALES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
NOISES = (1e-4, 1e-2, 1e-1)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between rows of one-hot matrices ``a`` and ``b``."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(sq, 0.0) / 2.0


class HammingGP:
    """GP regression on standardised targets; `predict` returns mean and standard deviation."""

    def __init__(self) -> None:
        self.x = np.zeros((0, 0))
        self.mean, self.scale = 0.0, 1.0
        self.lengthscale, self.noise = 1.0, 1e-2
        self._chol = np.zeros((0, 0))
        self._chol_inv = np.zeros((0, 0))
        self._alpha = np.zeros(0)

    def fit(
        self, x: np.ndarray, y: np.ndarray, hyper: tuple[float, float] | None = None
    ) -> HammingGP:
        """Fits on ``x`` (one-hot rows) and ``y``; ``hyper`` = (lengthscale, noise) skips the
        marginal-likelihood search."""
        self.x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        self.mean = float(y.mean())
        self.scale = float(y.std()) or 1.0
        z = (y - self.mean) / self.scale
        dist = hamming(self.x, self.x)
        grid = [hyper] if hyper is not None else [(ls, nz) for ls in LENGTHSCALES for nz in NOISES]
        best = -np.inf
        for ls, noise in grid:
            chol, alpha = _factor(np.exp(-dist / ls), noise, z)
            if chol is None:
                continue
            # log marginal likelihood up to a constant
            lml = -0.5 * z @ alpha - np.log(np.diag(chol)).sum()
            if lml > best:
                best = lml
                self.lengthscale, self.noise = ls, noise
                self._chol, self._alpha = chol, alpha
        # the inverse factor turns every later variance into one matrix product
        self._chol_inv = solve_triangular(self._chol, np.eye(len(self._chol)), lower=True)
        return self

    @property
    def hyper(self) -> tuple[float, float]:
        return self.lengthscale, self.noise

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k_star = np.exp(-hamming(np.asarray(x, dtype=float), self.x) / self.lengthscale)
        mu = k_star @ self._alpha
        v = k_star @ self._chol_inv.T
        var = np.maximum(1.0 - (v * v).sum(1), 1e-12)
        return mu * self.scale + self.mean, np.sqrt(var) * self.scale


def _factor(k: np.ndarray, noise: float, z: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    try:
        chol = np.linalg.cholesky(k + noise * np.eye(len(k)))
    except np.linalg.LinAlgError:
        return None, z
    return chol, cho_solve((chol, True), z)
