"""Accuracy surrogates on the predictor interface: a Gaussian process and a random forest.

Surrogate-guided search (BANANAS, White et al., AAAI 2021; NASBOT, Kandasamy et al., NeurIPS
2018) and supernet-free ranking need a model of accuracy with an uncertainty, fitted on a few
trained architectures. These take the same plan features as the latency predictors and fit the
target as it is (no log transform), so they serve any metric, accuracy first.

* ``gp``: Gaussian-process regression (Rasmussen and Williams 2006) with an RBF kernel on the
  standardised log features plus a white-noise term, hyper-parameters by marginal likelihood
  (scikit-learn); the posterior standard deviation is the uncertainty.
* ``rf``: a random forest (Breiman 2001); the spread of the trees' predictions is the
  uncertainty (the usual choice of SMAC, Hutter et al., LION 2011).
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from predictors.base import Predictor, register
from predictors.features import FeatureMap
from predictors.learned import _Scaler
from search_space.spec import ArchSpec


class _FeatureSurrogate(Predictor):
    predicts: ClassVar[str] = "accuracy"
    log_target: ClassVar[bool] = False

    def _x(self, specs: list[ArchSpec]) -> np.ndarray:
        x = self.features.transform(specs)[:, : len(self.features.names)]
        return self.scaler(x)

    def _prepare(self, specs: list[ArchSpec]) -> np.ndarray:
        self.features = FeatureMap().fit(specs)
        self.scaler = _Scaler().fit(self.features.transform(specs)[:, : len(self.features.names)])
        return self._x(specs)


@register
class GPSurrogate(_FeatureSurrogate):
    """Gaussian-process regression on standardised plan features."""

    name = "gp"

    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        x = self._prepare(specs)
        kernel = ConstantKernel(1.0) * RBF(length_scale=float(np.sqrt(x.shape[1]))) + WhiteKernel(
            0.1
        )
        self.model = GaussianProcessRegressor(
            kernel, normalize_y=True, n_restarts_optimizer=1, random_state=self.seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bound warnings on tiny or constant data
            self.model.fit(x, y)

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.model.predict(self._x(specs), return_std=True)
        return mean, std


@register
class RandomForestSurrogate(_FeatureSurrogate):
    """Random forest on standardised plan features; tree spread as uncertainty."""

    name = "rf"

    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestRegressor

        self.model = RandomForestRegressor(
            n_estimators=200, min_samples_leaf=2, max_features=0.5, random_state=self.seed, n_jobs=1
        ).fit(self._prepare(specs), y)

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        x = self._x(specs)
        trees = np.stack([t.predict(x) for t in self.model.estimators_])
        return trees.mean(0), trees.std(0)
