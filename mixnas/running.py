"""What a driver keeps up to date trial by trial, at a cost that does not grow with the run.

`RunningFront` is the Pareto front of the eligible trials so far (the progress line's "front"),
updated per trial in time proportional to the front's size, not the run's. `RunningQuantile` is the
screening threshold of a promotion rule (a quantile of every earlier value of a metric), updated
in O(log n) per value with two heaps instead of a sort of every earlier value per ask (and, as
a median, the typical trial duration a time budget is judged by). `AnalyticBounds` are the config
constraints a candidate can be judged by before any evaluator runs, in microseconds.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixnas.config import ObjectiveConfig, PromoteRule
from mixnas.front import eligible, violations


class RunningFront:
    """The non-dominated eligible trials seen so far (see `mixnas.front.front` for the rule).

    Trials with equal objective values are all on the front together (as in `front`) but are
    kept as one point with several trial ids: cheap objectives (MACs, parameters) tie often, and
    a front of ten thousand copies of two points must cost what two points cost per update.
    """

    def __init__(
        self,
        objectives: Sequence[ObjectiveConfig],
        constraints: Mapping[str, Mapping[str, float]],
    ) -> None:
        self.objectives = tuple(objectives)
        self.constraints = constraints
        self._signs = np.array([-1.0 if o.direction == "maximize" else 1.0 for o in objectives])
        self._points: dict[tuple[float, ...], list[int]] = {}  # loss vector -> its trials
        self._losses = np.zeros((0, len(self.objectives)))  # the keys of _points, in order
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def trial_ids(self) -> list[int]:
        return sorted(t for ids in self._points.values() for t in ids)

    def add(self, trial: Any) -> bool:
        """Offers a finished trial (anything with ``trial_id``, ``status`` and ``metrics``);
        True when it joined the front."""
        if not eligible(trial, self.objectives, self.constraints):
            return False
        loss = self._signs * np.array([trial.metrics[o.metric] for o in self.objectives])
        key = tuple(float(v) for v in loss)
        if key in self._points:  # a tie with a member: on the front beside it
            self._points[key].append(int(trial.trial_id))
            self._size += 1
            return True
        if len(self._points):
            no_worse = np.all(self._losses <= loss, axis=1)
            better = np.any(self._losses < loss, axis=1)
            if np.any(no_worse & better):
                return False  # dominated by a member
            # members the newcomer dominates leave
            gone = np.all(loss <= self._losses, axis=1) & np.any(loss < self._losses, axis=1)
            for row in np.flatnonzero(gone):
                self._size -= len(self._points.pop(tuple(float(v) for v in self._losses[row])))
            self._losses = self._losses[~gone]
        self._losses = np.vstack([self._losses, loss])
        self._points[key] = [int(trial.trial_id)]
        self._size += 1
        return True


class RunningQuantile:
    """``numpy.quantile(values, q)`` (linear interpolation) of a growing list of values.

    The two order statistics the interpolation needs are the largest of the ``k + 1`` smallest
    values and the smallest of the rest, where ``k = floor((n - 1) q)``: a max-heap holds the
    former group, a min-heap the latter, and each new value moves at most one value across.
    """

    def __init__(self, q: float) -> None:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        self.q = q
        self._low: list[float] = []  # negated: a max-heap of the k + 1 smallest values
        self._high: list[float] = []  # a min-heap of the others
        self.n = 0

    def add(self, value: float) -> None:
        if self._low and value > -self._low[0]:
            heapq.heappush(self._high, value)
        else:
            heapq.heappush(self._low, -value)
        self.n += 1
        want = self._index()[0] + 1
        while len(self._low) > want:
            heapq.heappush(self._high, -heapq.heappop(self._low))
        while len(self._low) < want:
            heapq.heappush(self._low, -heapq.heappop(self._high))

    def _index(self) -> tuple[int, float]:
        # the virtual index numpy's "linear" method uses, computed the same way
        virtual = (self.n - 1) * self.q
        below = min(max(math.floor(virtual), 0), self.n - 1)
        return below, virtual - below

    def value(self) -> float:
        if self.n == 0:
            raise ValueError("no values yet")
        _, fraction = self._index()
        a = -self._low[0]
        b = self._high[0] if self._high else a
        # numpy's lerp, which is exact at both ends
        return float(b - (b - a) * (1.0 - fraction) if fraction >= 0.5 else a + (b - a) * fraction)


class Threshold:
    """A promotion rule's threshold over the trials told so far (`mixnas.pipeline`'s rule)."""

    def __init__(self, rule: PromoteRule) -> None:
        self.rule = rule
        top = 1.0 - rule.top if rule.direction == "maximize" else rule.top
        self._quantile = RunningQuantile(top)

    def add(self, metrics: Mapping[str, float]) -> None:
        value = metrics.get(self.rule.metric, math.nan)
        if math.isfinite(value):
            self._quantile.add(float(value))

    def value(self) -> float | None:
        if self._quantile.n < max(self.rule.warmup, 1):
            return None
        return self._quantile.value()


class AnalyticBounds:
    """The config constraints on metrics the space prices analytically (params, MACs, bytes,
    bit-operations, activation bytes: `search_space.spec_cost`, torch-free, microseconds): a
    candidate that breaks one is pruned before any evaluator runs (`mixnas.driver`)."""

    def __init__(self, constraints: Mapping[str, Mapping[str, float]]) -> None:
        from search_space.declare.schema import ANALYTIC_METRICS

        self.bounds = {m: dict(b) for m, b in constraints.items() if m in ANALYTIC_METRICS}

    def __bool__(self) -> bool:
        return bool(self.bounds)

    def check(self, spec: Any) -> tuple[dict[str, float], list[str]]:
        """The spec's analytic costs, and each bound it breaks in words
        (``params 136,558 > max 120,000``; empty when it meets them all)."""
        from search_space import spec_cost

        costs = {k: float(v) for k, v in spec_cost(spec).to_dict().items()}
        broken = []
        for metric, bound in self.bounds.items():
            if metric in costs:
                broken += violations(metric, costs[metric], bound)
        return costs, broken
