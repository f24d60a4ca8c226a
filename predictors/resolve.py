"""Resolving ``latency_ms@<device>`` names to functions of a spec, for constraints and objectives.

A space may declare a bound the space cannot check by itself, e.g. ``latency_ms@host <= 20``.
`search_space` stays free of predictors: its ``sample``, ``mutate``, ``crossover`` and
``violations`` take ``metrics={name: function(spec) -> value}``. This module supplies the
functions:

    resolver = LatencyResolver()                      # host: op lookup table, calibrated
    metrics = resolver.for_space(space)               # {"latency_ms@host": fn}: 90% quantile
    spec = space.sample(rng, metrics=metrics)         # meets the latency bound (as predicted)
    space = resolver.constrain(space)                 # or: a space that passes them itself,
    strategy = strategies.create("evolution", space, ...)  # so any strategy enforces the bound

Devices: ``host`` (and ``cuda`` where torch sees a GPU) use an op-level lookup table
(`predictors.lut`) profiled on this machine, cached on disk, and calibrated on first use by
timing a few specs of the space (``calibration`` of them); a name of the roofline library
(`predictors.roofline.DEVICES`) uses the roofline model (an optimistic estimate until calibrated);
`add(device, predictor)` registers any fitted predictor for any device name. Values are cached per
spec id, since search asks about the same specs again and again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from predictors.base import Predictor
from search_space.errors import SpaceError
from search_space.spec import ArchSpec

MetricFn = Callable[[ArchSpec], float]
PREFIX = "latency_ms@"
TORCH_DEVICES = {"host": "cpu", "cuda": "cuda"}
log = logging.getLogger(__name__)


class LatencyResolver:
    """Maps ``latency_ms@<device>`` to a predictor's ``spec -> ms`` function (see module doc).

    Args:
        cache_dir: where host lookup tables live (default `predictors.table.default_cache_dir`).
        calibration: specs of the space measured to calibrate a host table (0: plain op sums).
        threads, batch_size, dtype, statistic: timing options of host tables and calibration
            measurements; keep them equal to those of the ``latency`` evaluator they stand for.
        quantile: constraints are checked on this quantile of the predicted latency (the
            prediction plus ``norm.ppf(quantile)`` standard deviations), so that a bound holds
            when measured, not only as predicted; 0.5 checks the prediction itself.
        seed: seeds the choice of calibration specs.
    """

    def __init__(
        self,
        *,
        cache_dir: str | Path | None = None,
        calibration: int = 10,
        threads: int = 1,
        batch_size: int = 1,
        dtype: str = "auto",
        statistic: str = "median",
        quantile: float = 0.9,
        seed: int = 0,
    ) -> None:
        if isinstance(calibration, bool) or not isinstance(calibration, int) or calibration < 0:
            raise SpaceError("resolver.calibration", "must be an integer >= 0", value=calibration)
        if not isinstance(quantile, int | float) or not 0.0 < quantile < 1.0:
            raise SpaceError("resolver.quantile", "must be a number in (0, 1)", value=quantile)
        self.quantile = float(quantile)
        self.cache_dir = cache_dir
        self.calibration = calibration
        from predictors.timing import TimingOptions

        # validated once here; tables and calibration measurements use the same settings
        self.timing = TimingOptions(
            threads=threads, batch_size=batch_size, dtype=dtype, statistic=statistic
        )
        self.seed = seed
        self.predictors: dict[str, Predictor] = {}
        self._calibrated: set[str] = set()
        self._values: dict[tuple[str, str], tuple[float, float]] = {}

    # -- devices ---------------------------------------------------------------------------------
    def add(self, device: str, predictor: Predictor) -> None:
        """Uses a fitted ``predictor`` for ``latency_ms@<device>``."""
        if not predictor.fitted:
            raise SpaceError(f"resolver.{device}", "the predictor must be fitted first")
        self.predictors[device] = predictor
        self._calibrated.add(device)

    def predictor(self, device: str) -> Predictor:
        """The predictor behind ``latency_ms@<device>`` (created on first use)."""
        if device in self.predictors:
            return self.predictors[device]
        from predictors.lut import LookupTablePredictor
        from predictors.roofline import DEVICES, RooflinePredictor

        made: Predictor
        if device in TORCH_DEVICES:
            made = LookupTablePredictor(
                device=device,
                cache_dir=self.cache_dir,
                torch_device=TORCH_DEVICES[device],
                threads=self.timing.threads,
                batch_size=self.timing.batch_size,
                dtype=self.timing.dtype,
                statistic=self.timing.statistic,
            )
        elif device in DEVICES:
            log.warning("latency_ms@%s: uncalibrated roofline estimate (optimistic)", device)
            made = RooflinePredictor(device=device, batch_size=self.timing.batch_size)
        else:
            known = sorted({*TORCH_DEVICES, *DEVICES, *self.predictors})
            raise SpaceError(
                f"{PREFIX}{device}",
                f"no predictor for this device; known: {', '.join(known)} "
                "(or register a fitted one with LatencyResolver.add)",
            )
        self.predictors[device] = made
        return made

    def metric(self, name: str, *, quantile: float = 0.5) -> MetricFn:
        """The function of a spec that ``name`` (``latency_ms@<device>``) stands for: the
        predicted latency (``quantile=0.5``, for objectives) or a quantile of it."""
        if not isinstance(name, str) or not name.startswith(PREFIX) or name == PREFIX:
            raise SpaceError("metric", f"must read {PREFIX}<device>", value=name)
        from scipy.stats import norm

        device = name[len(PREFIX) :]
        predictor = self.predictor(device)
        z = float(norm.ppf(quantile))

        def value(spec: ArchSpec) -> float:
            key = (device, spec.id)
            if key not in self._values:
                mean, std = predictor.predict_with_std([spec])
                self._values[key] = (float(mean[0]), float(std[0]))
            mean_ms, std_ms = self._values[key]
            return mean_ms + z * std_ms

        return value

    # -- spaces ----------------------------------------------------------------------------------
    def for_space(self, space: Any) -> dict[str, MetricFn]:
        """Functions for every non-analytic constraint of ``space``, calibrated on its specs."""
        out = {}
        for c in space.constraints:
            if c.analytic:
                continue
            device = c.metric[len(PREFIX) :] if c.metric.startswith(PREFIX) else ""
            out[c.metric] = self.metric(c.metric, quantile=self.quantile)
            self.calibrate(device, space)
        return out

    def calibrate(self, device: str, space: Any) -> None:
        """Times ``calibration`` specs of ``space`` and fits the device's table correction."""
        if device in self._calibrated or device not in TORCH_DEVICES or not self.calibration:
            return
        from predictors.timing import measure_spec

        analytic = [c for c in space.constraints if c.analytic]
        rng = np.random.default_rng(self.seed)
        saved = space.constraints
        try:  # draw under the analytic bounds only: the latency bound is what we calibrate for
            space.constraints = tuple(analytic)
            specs = [space.sample(rng) for _ in range(self.calibration)]
        finally:
            space.constraints = saved
        options = self.timing
        y = [
            measure_spec(s, options, torch_device=TORCH_DEVICES[device]).value(options.statistic)
            for s in specs
        ]
        self.predictor(device).fit(specs, y)
        self._calibrated.add(device)
        self._values = {k: v for k, v in self._values.items() if k[0] != device}

    def constrain(self, space: Any) -> ConstrainedSpace:
        """``space`` with its latency constraints enforced in every draw; see `ConstrainedSpace`."""
        return ConstrainedSpace(space, self.for_space(space))


class ConstrainedSpace:
    """A space whose ``sample``, ``mutate``, ``crossover``, ``violations`` and ``contains`` pass
    resolved metric functions, so strategies that know nothing of predictors enforce non-analytic
    constraints. Everything else is the wrapped space's."""

    def __init__(self, space: Any, metrics: Mapping[str, MetricFn]) -> None:
        self.space = space
        self.metrics = dict(metrics)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.space, name)

    def sample(self, seed: Any = None, *, max_tries: int = 1000, metrics: Any = None) -> ArchSpec:
        return self.space.sample(seed, max_tries=max_tries, metrics=metrics or self.metrics)

    def mutate(
        self, spec: ArchSpec, seed: Any = None, *, max_tries: int = 100, metrics: Any = None
    ) -> ArchSpec:
        return self.space.mutate(spec, seed, max_tries=max_tries, metrics=metrics or self.metrics)

    def crossover(
        self,
        a: ArchSpec,
        b: ArchSpec,
        seed: Any = None,
        *,
        max_tries: int = 100,
        metrics: Any = None,
    ) -> ArchSpec:
        return self.space.crossover(
            a, b, seed, max_tries=max_tries, metrics=metrics or self.metrics
        )

    def violations(self, spec: ArchSpec, metrics: Any = None) -> list[str]:
        return list(self.space.violations(spec, metrics or self.metrics))

    def contains(self, spec: ArchSpec, *, check_constraints: bool = True) -> bool:
        if not self.space.contains(spec, check_constraints=False):
            return False
        return not check_constraints or not self.violations(spec)
