"""The predictor protocol: ``fit(specs, targets)``, ``predict(specs)``, ``predict_std(specs)``.

Who calls what: a benchmark, a resolver for ``latency_ms@<device>`` constraints (see
`predictors.resolve`) or a surrogate-guided search fits a predictor on measured specs, then asks it
for predictions of unmeasured ones. Predictions are in the unit of the targets (milliseconds for
latency); `predict_std` says how sure the predictor is (one standard deviation, same unit). Every
predictor accepts specs of any space, because its features come from the spec's plan
(`predictors.features`), not from one space's encoding.

A predictor declares what it predicts (``predicts``, e.g. ``latency_ms`` or ``accuracy``) and for
which device (``device``). Latency predictors fit the logarithm of the target, so that errors are
relative (a 10% miss costs the same on a 1 ms and a 100 ms model) and predictions stay positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from search_space.errors import MixnasError, SpaceError
from search_space.registry import Registry
from search_space.spec import ArchSpec

MIN_SAMPLES = 2


class Predictor:
    """Base class: validates inputs, handles the log transform; subclasses implement `_fit` and
    `_predict` (returning mean and standard deviation in the transformed unit)."""

    name: ClassVar[str] = ""
    predicts: ClassVar[str] = "latency_ms"
    log_target: ClassVar[bool] = True

    def __init__(self, *, seed: int = 0, device: str = "host") -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise SpaceError(f"predictor.{self.name}.seed", "must be an integer", value=seed)
        if not isinstance(device, str) or not device or "@" in device:
            raise SpaceError(
                f"predictor.{self.name}.device",
                "must be a non-empty name without '@'",
                value=device,
            )
        self.seed = seed
        self.device = device
        self.fitted = False

    # -- protocol --------------------------------------------------------------------------------
    def fit(self, specs: Sequence[ArchSpec], targets: Sequence[float] | np.ndarray) -> Predictor:
        """Fits on measured ``specs``; returns self."""
        specs, y = self._check(specs, targets)
        self._fit(specs, np.log(y) if self.log_target else y)
        self.fitted = True
        return self

    def predict(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """Predictions for ``specs`` in the unit of the targets."""
        return self.predict_with_std(specs)[0]

    def predict_std(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """One standard deviation of each prediction, in the unit of the targets."""
        return self.predict_with_std(specs)[1]

    def predict_with_std(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        specs = self._check_specs(specs)
        if not self.fitted:
            raise MixnasError(f"predictor {self.name!r}: call fit(specs, targets) before predict")
        if not specs:
            return np.zeros(0), np.zeros(0)
        mean, std = self._predict(specs)
        mean, std = np.asarray(mean, dtype=float), np.maximum(np.asarray(std, dtype=float), 0.0)
        if not self.log_target:
            return mean, std
        # log-normal: the median is exp(mean); the spread is std of the log times the median
        median = np.exp(mean)
        return median, median * std

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "predicts": self.predicts, "device": self.device}

    # -- to implement ----------------------------------------------------------------------------
    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    # -- validation ------------------------------------------------------------------------------
    def _check_specs(self, specs: Sequence[ArchSpec]) -> list[ArchSpec]:
        specs = list(specs)
        for i, spec in enumerate(specs):
            if not isinstance(spec, ArchSpec):
                raise SpaceError(f"specs[{i}]", "must be an ArchSpec", value=type(spec).__name__)
        return specs

    def _check(
        self, specs: Sequence[ArchSpec], targets: Sequence[float] | np.ndarray
    ) -> tuple[list[ArchSpec], np.ndarray]:
        specs = self._check_specs(specs)
        y = np.asarray(targets, dtype=float).reshape(-1)
        if len(specs) != len(y):
            raise SpaceError(
                "targets", f"needs one value per spec ({len(specs)} specs)", value=len(y)
            )
        if len(y) < MIN_SAMPLES:
            raise SpaceError("specs", f"fit needs at least {MIN_SAMPLES} specs", value=len(y))
        if not np.all(np.isfinite(y)):
            raise SpaceError("targets", "must be finite numbers", value=y[~np.isfinite(y)][0])
        if self.log_target and np.any(y <= 0):
            raise SpaceError(
                "targets", f"{self.predicts} targets must be > 0", value=float(y[y <= 0][0])
            )
        return specs, y


def _builtins() -> None:
    from predictors import _load_builtins

    _load_builtins()


# built-ins first, then the plug-ins of the group, on the first lookup
PREDICTORS: Registry[type[Predictor]] = Registry(
    "predictor", group="mixnas.predictors", builtins=_builtins
)


def register(cls: type[Predictor]) -> type[Predictor]:
    """Class decorator: registers a predictor under its ``name``."""
    PREDICTORS.register(cls.name, cls)
    return cls
