"""Learned predictors over plan features: MACs-linear and ridge baselines, boosted trees, MLPs.

All fit the log of the target (see `predictors.base`) from `predictors.features`:

* ``macs_linear``: latency = a * MACs + b, least squares; the baseline every latency paper beats
  (MACs ignore memory traffic, parallelism and per-op overhead; Zhang et al., nn-Meter, MobiSys
  2021, Section 2).
* ``ridge``: ridge regression (Hoerl and Kennard, Technometrics 1970) on the standardised
  features, its penalty chosen by exact leave-one-out error, which is also its uncertainty. With
  more features than samples a penalty picked by the fit itself would interpolate the training
  data and leave nothing for the residual models below.
* ``gbt``: the ridge fit as a base, gradient-boosted trees (Friedman, Annals of Statistics 2001;
  scikit-learn's histogram variant) on its residuals, bagged over bootstrap samples; the spread of
  the bag is the uncertainty. The linear base extrapolates in size, the trees add interactions
  (an attention block costs more at high resolution), so it works from 20 samples to thousands.
* ``mlp``: the same ridge base plus an ensemble of small MLPs on the residuals (deep ensembles,
  Lakshminarayanan et al., NeurIPS 2017: the members' disagreement is the uncertainty); BRP-NAS
  (Dudziak et al., NeurIPS 2020) and HELP use neural latency predictors of this kind.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from predictors.base import Predictor, register
from predictors.features import FeatureMap
from search_space.spec import ArchSpec

ALPHAS = np.logspace(-3, 4, 15)


class _Scaler:
    """Standardises columns; constant columns keep scale 1 so they stay zero."""

    def fit(self, x: np.ndarray) -> _Scaler:
        self.mean = x.mean(0)
        std = x.std(0)
        self.std = np.where(std > 1e-12, std, 1.0)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


def ridge_loo(
    x: np.ndarray, y: np.ndarray, alphas: np.ndarray = ALPHAS
) -> tuple[float, np.ndarray, float, float]:
    """Ridge regression with an intercept, the penalty picked by exact leave-one-out error."""
    xm, ym = x.mean(0), y.mean()
    xc, yc = x - xm, y - ym
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in alphas:
        shrink = s / (s**2 + alpha)
        w = vt.T @ (shrink * (u.T @ yc))
        # hat matrix diagonal of the centred problem, plus 1/n for the intercept
        h = (u**2 * (s**2 / (s**2 + alpha))).sum(1) + 1.0 / len(y)
        loo = (yc - xc @ w) / np.maximum(1.0 - h, 1e-6)
        err = float(np.mean(loo**2))
        if best is None or err < best[1]:
            best = (float(alpha), err, w)
    assert best is not None
    alpha, err, w = best
    return alpha, w, float(ym - xm @ w), float(np.sqrt(err))


@register
class MacsLinear(Predictor):
    """Baseline: ``target = a * MACs + b`` by least squares (in the target's own unit)."""

    name = "macs_linear"
    log_target: ClassVar[bool] = False

    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        macs = FeatureMap().column(specs, "total:macs")
        design = np.column_stack([macs, np.ones_like(macs)])
        self.coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ self.coef
        self.sigma = float(np.sqrt(np.mean(resid**2)))

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        macs = FeatureMap().column(specs, "total:macs")
        mean = self.coef[0] * macs + self.coef[1]
        return mean, np.full(len(specs), self.sigma)


@register
class RidgePredictor(Predictor):
    """Ridge regression on standardised plan features (log target), the penalty chosen by exact
    leave-one-out error; the leave-one-out error is also the uncertainty."""

    name = "ridge"

    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        self.features = FeatureMap().fit(specs)
        x = self.features.transform(specs)
        self.scaler = _Scaler().fit(x)
        self.alpha, self.weights, self.bias, self.sigma = ridge_loo(self.scaler(x), y)

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        x = self.scaler(self.features.transform(specs))
        return x @ self.weights + self.bias, np.full(len(specs), self.sigma)


class _ResidualEnsemble(Predictor):
    """A ridge base plus an ensemble of nonlinear models fitted to its residuals."""

    members: ClassVar[int] = 3

    def __init__(self, *, seed: int = 0, device: str = "host") -> None:
        super().__init__(seed=seed, device=device)
        self.base = RidgePredictor(seed=seed, device=device)

    def _member(self, k: int, n: int) -> object:
        raise NotImplementedError

    def _inputs(self, specs: list[ArchSpec]) -> np.ndarray:
        x = self.base.features.transform(specs)
        return x[:, : len(self.base.features.names)]  # log1p columns; raw ones repeat them

    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        self.base._fit(specs, y)
        resid = y - self.base._predict(specs)[0]
        x = self._inputs(specs)
        self.scaler = _Scaler().fit(x)
        xs = self.scaler(x)
        rng = np.random.default_rng(self.seed)
        self.models = []
        for k in range(self.members):
            rows = rng.integers(0, len(y), len(y)) if self.members > 1 else np.arange(len(y))
            model = self._member(k, len(y))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MLP convergence warnings on tiny data
                model.fit(xs[rows], resid[rows])  # type: ignore[attr-defined]
            self.models.append(model)

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        base, base_std = self.base._predict(specs)
        xs = self.scaler(self._inputs(specs))
        preds = np.stack([m.predict(xs) for m in self.models])  # type: ignore[attr-defined]
        spread = preds.std(0) if len(self.models) > 1 else np.zeros(len(specs))
        # the bag spread misses the error the ridge base shares across members
        return base + preds.mean(0), np.sqrt(spread**2 + (0.5 * base_std) ** 2)


@register
class GBTPredictor(_ResidualEnsemble):
    """Ridge base plus bagged histogram gradient-boosted trees on its residuals."""

    name = "gbt"

    def _member(self, k: int, n: int) -> object:
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=300,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=max(2, min(20, n // 20)),
            l2_regularization=1.0,
            early_stopping=False,
            random_state=self.seed + k,
        )


@register
class MLPEnsemble(_ResidualEnsemble):
    """Ridge base plus a deep ensemble of small MLPs on its residuals."""

    name = "mlp"
    members: ClassVar[int] = 4

    def _member(self, k: int, n: int) -> object:
        from sklearn.neural_network import MLPRegressor

        return MLPRegressor(
            hidden_layer_sizes=(64, 64),
            alpha=1e-2,
            learning_rate_init=1e-3,
            max_iter=500 if n > 500 else 1000,
            random_state=self.seed + k,
        )
