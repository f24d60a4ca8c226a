"""Few-shot latency transfer to a new device: pretrain on source devices, adapt from ~20 samples.

The idea of HELP (Lee, Lee and Hwang, "HELP: Hardware-adaptive Efficient Latency Prediction for
NAS via Meta-Learning", NeurIPS 2021): latencies on different devices are strongly related, so a
device can be described by how it times a few architectures, and a predictor learned on many
devices adapts to a new one from 10-20 measurements. HELP meta-learns a network conditioned on a
hardware embedding; this predictor keeps the idea in its simplest convex form:

1. `pretrain` fits one multi-output model on the source devices: standardised log latency of every
   source device from the plan features (a ridge base plus extremely randomised trees on its
   residuals, Geurts et al., Machine Learning 2006, which handle many outputs in one fit);
2. `fit` on the target's few samples regresses the target's log latency on the source devices'
   predicted (standardised) log latencies: ridge regression with the penalty chosen by
   leave-one-out error. The target device is thus a learned mixture of source devices, its
   "hardware embedding" the ridge weights.

Without `pretrain` it falls back to the ``gbt`` predictor on the target's samples alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from predictors.base import Predictor, register
from predictors.features import FeatureMap
from predictors.learned import GBTPredictor, _Scaler, ridge_loo
from search_space.errors import SpaceError
from search_space.spec import ArchSpec


class SourceModel:
    """Standardised log latency of each source device, predicted from plan features."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def fit(self, specs: Sequence[ArchSpec], y: np.ndarray) -> SourceModel:
        from sklearn.ensemble import ExtraTreesRegressor
        from sklearn.linear_model import Ridge

        self.features = FeatureMap().fit(specs)
        x = self.features.transform(specs)
        self.scaler = _Scaler().fit(x)
        xs = self.scaler(x)
        self.mean, self.std = y.mean(0), np.where(y.std(0) > 0, y.std(0), 1.0)
        z = (y - self.mean) / self.std
        self.linear = Ridge(alpha=1.0).fit(xs, z)
        self.trees = ExtraTreesRegressor(
            n_estimators=100,
            min_samples_leaf=2,
            max_features=0.3,
            random_state=self.seed,
            n_jobs=1,
        ).fit(xs[:, : len(self.features.names)], z - self.linear.predict(xs))
        return self

    def __call__(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        xs = self.scaler(self.features.transform(specs))
        base = self.linear.predict(xs)
        out = base + self.trees.predict(xs[:, : len(self.features.names)])
        return np.asarray(out).reshape(len(specs), -1)


@register
class FewShotTransfer(Predictor):
    """Pretrained on source devices (`pretrain`), adapted to ``device`` by `fit`."""

    name = "transfer"

    def __init__(self, *, seed: int = 0, device: str = "host") -> None:
        super().__init__(seed=seed, device=device)
        self.source: SourceModel | None = None
        self.source_devices: list[str] = []
        self.fallback: GBTPredictor | None = None

    def pretrain(
        self, specs: Sequence[ArchSpec], targets: Mapping[str, Sequence[float] | np.ndarray]
    ) -> FewShotTransfer:
        """Learns the source devices: ``targets[device][i]`` is the latency of ``specs[i]``."""
        specs = self._check_specs(specs)
        if not targets:
            raise SpaceError("targets", "pretrain needs at least one source device", value={})
        columns = []
        for values in targets.values():
            _, y = self._check(specs, values)
            columns.append(np.log(y))
        self.source_devices = list(targets)
        self.source = SourceModel(self.seed).fit(specs, np.column_stack(columns))
        return self

    def embed(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """Each spec's predicted standardised log latency on every source device."""
        if self.source is None:
            raise SpaceError("predictor.transfer", "call pretrain(specs, targets) first")
        return self.source(list(specs))

    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        if self.source is None:
            self.fallback = GBTPredictor(seed=self.seed, device=self.device)
            self.fallback._fit(specs, y)
            return
        self.fallback = None
        s = self.embed(specs)
        self.alpha, self.weights, self.bias, self.sigma = ridge_loo(s, y)

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        if self.fallback is not None:
            return self.fallback._predict(specs)
        mean = self.embed(specs) @ self.weights + self.bias
        return mean, np.full(len(specs), self.sigma)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["source_devices"] = self.source_devices
        if self.source is not None and self.fitted and self.fallback is None:
            out["embedding"] = dict(zip(self.source_devices, self.weights.tolist(), strict=True))
        return out
