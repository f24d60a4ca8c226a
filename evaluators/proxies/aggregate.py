"""Combining proxies: rank vote, a learned combination, and a reliability check.

Proxies disagree in scale and direction, so everything here works on ranks. The rank vote is the
mean rank across proxies (the majority-vote aggregate of NAS-Bench-Suite-Zero, Krishnakumar et al.
2022, in its rank form). The learned combination fits ridge weights on proxy ranks from a handful
of trained architectures. The reliability check says, for a space and sample, whether a proxy
ranks the trained ones better than parameter count does, the baseline a proxy must beat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata, spearmanr


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks in [0, 1]; NaN scores (a proxy that could not score a model) rank at the bottom."""
    v = np.where(np.isfinite(values), values, -np.inf)
    return (rankdata(v) - 1) / max(len(v) - 1, 1)


def rank_vote(
    scores: Mapping[str, Sequence[float]], names: Sequence[str] | None = None
) -> np.ndarray:
    """Mean rank across the proxies in ``names`` (all by default); higher is better."""
    chosen = list(names or scores)
    return np.mean([_ranks(np.asarray(scores[n], dtype=float)) for n in chosen], axis=0)


class LearnedCombination:
    """Ridge regression from proxy ranks to accuracy, fitted on a few trained architectures."""

    def __init__(self, names: Sequence[str], alpha: float = 1.0) -> None:
        self.names = list(names)
        self.alpha = alpha
        self.coef = np.zeros(len(self.names))
        self.intercept = 0.0

    def _features(self, scores: Mapping[str, Sequence[float]]) -> np.ndarray:
        return np.stack([_ranks(np.asarray(scores[n], dtype=float)) for n in self.names], axis=1)

    def fit(
        self,
        scores: Mapping[str, Sequence[float]],
        train_index: Sequence[int],
        accuracy: Sequence[float],
    ) -> LearnedCombination:
        """Fits on the rows ``train_index`` of ``scores`` (ranks are taken over all rows, so
        the features mean the same at fit and predict time)."""
        x = self._features(scores)[list(train_index)]
        y = np.asarray(accuracy, dtype=float)
        xm, ym = x.mean(0), y.mean()
        xc = x - xm
        self.coef = np.linalg.solve(xc.T @ xc + self.alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
        self.intercept = float(ym - xm @ self.coef)
        return self

    def predict(self, scores: Mapping[str, Sequence[float]]) -> np.ndarray:
        return self._features(scores) @ self.coef + self.intercept


def reliability(
    scores: Mapping[str, Sequence[float]], accuracy: Sequence[float], baseline: str = "params"
) -> dict[str, dict[str, float | bool]]:
    """Per proxy: Spearman with accuracy on the evaluated sample, and whether it beats the
    ``baseline`` proxy's Spearman."""
    acc = np.asarray(accuracy, dtype=float)

    def rho(values: Sequence[float]) -> float:
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v)
        return float(spearmanr(v[ok], acc[ok]).statistic) if ok.sum() > 2 else float("nan")

    base = rho(scores[baseline])
    return {
        name: {"spearman": (r := rho(v)), "beats_baseline": bool(r > base)}
        for name, v in scores.items()
    }
