"""NSGA-II, Deb et al. 2002, "A fast and elitist multiobjective genetic algorithm: NSGA-II",
with constrained domination (feasibility first) and crowding distance.

Asynchronous-friendly elitist form: results arrive one by one; every ``population_size`` new
results the parents are re-selected from parents + offspring by non-dominated sorting and
crowding, as in NSGA-II's (mu + lambda) step. Children come from binary tournaments on (rank,
crowding), crossover with probability ``crossover_prob``, then mutation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from search_space.declare.decisions import DecisionSpace
from search_space.declare.schema import Constraint
from search_space.option_types import Opt
from search_space.spec import ArchSpec
from strategies import register
from strategies.base import MAX_POPULATION, OK, Objective, Observation, Strategy
from strategies.ranking import best_first, rank_and_crowding


@register
class NSGA2(Strategy):
    name = "nsga2"
    option_types: ClassVar[Mapping[str, Opt]] = {
        "population_size": Opt("int", min=1, max=MAX_POPULATION),
        "crossover_prob": Opt("float", min=0.0, max=1.0),
    }

    def __init__(
        self,
        space: DecisionSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] | None = None,
        initial: Sequence[ArchSpec] = (),
        population_size: int = 40,
        crossover_prob: float = 0.9,
    ) -> None:
        super().__init__(space, objectives, seed=seed, constraints=constraints, initial=initial)
        self.population_size = population_size
        self.crossover_prob = crossover_prob
        self.parents: list[Observation] = []
        self.offspring: list[Observation] = []
        self._rank = np.zeros(0, dtype=int)
        self._crowd = np.zeros(0)

    def _reset_state(self) -> None:
        self.parents, self.offspring = [], []
        self._rank, self._crowd = np.zeros(0, dtype=int), np.zeros(0)

    def _observe(self, obs: Observation) -> None:
        if obs.status != OK:
            return
        self.offspring.append(obs)
        if len(self.offspring) < self.population_size:  # the generation is not complete yet
            return
        merged = self.parents + self.offspring
        self.parents = best_first(self, merged, self.population_size)
        self.offspring = []
        self._rank, self._crowd = rank_and_crowding(self, self.parents)

    def _binary_tournament(self) -> ArchSpec:
        i, j = self.rng.choice(len(self.parents), size=2, replace=len(self.parents) < 2)
        better = (self._rank[i], -self._crowd[i]) <= (self._rank[j], -self._crowd[j])
        return self.parents[i if better else j].spec

    def _propose(self, n: int) -> list[tuple[ArchSpec, str]]:
        if not self.parents:
            return self._random(n)
        out = []
        for _ in range(n):
            a = self._binary_tournament()
            if self.rng.random() < self.crossover_prob:
                child = self.space.crossover(a, self._binary_tournament(), self.rng)
                out.append((self.space.mutate(child, self.rng), "crossover+mutation"))
            else:
                out.append((self.space.mutate(a, self.rng), "mutation"))
        return out
