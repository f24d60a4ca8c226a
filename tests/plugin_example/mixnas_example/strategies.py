"""The plug-in's strategy: random samples first, then mutations of the best result so far."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from search_space.option_types import Opt
from strategies import register
from strategies.base import Strategy


class GreedyMutation(Strategy):
    """``warmup`` random candidates, then mutations of the best candidate on the first objective
    (random again when no result is ok yet)."""

    name = "example_greedy"
    option_types: ClassVar[Mapping[str, Opt]] = {"warmup": Opt("int", min=1, max=100_000)}

    def __init__(self, space, objectives, *, seed, constraints=None, initial=(), warmup=10):
        super().__init__(space, objectives, seed=seed, constraints=constraints, initial=initial)
        self.warmup = warmup
        self._best = None

    def _reset_state(self):
        self._best = None

    def _observe(self, obs):
        if obs.status != "ok":
            return
        loss = float(self.losses(obs)[0]) + self.violation(obs)
        if self._best is None or loss < self._best[0]:
            self._best = (loss, obs.spec)

    def _propose(self, n):
        if self._best is None or len(self.history) < self.warmup:
            return self._random(n)
        return [(self.space.mutate(self._best[1], self.rng), "mutation") for _ in range(n)]


def register_all():
    """The entry point: registers the strategies of this module."""
    register(GreedyMutation)
