"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search".

The population is the ``population_size`` most recent successful results (oldest die first, not
the worst). A child is a mutation of the winner of a tournament among ``sample_size`` random
members; with ``crossover_prob`` > 0 the winner is first crossed with a second tournament winner.
Tournaments rank by feasibility, Pareto rank and crowding (`strategies.ranking`), which reduces
to plain fitness for one objective.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import ClassVar

from search_space.declare.decisions import DecisionSpace
from search_space.declare.schema import Constraint
from search_space.option_types import Opt
from search_space.spec import ArchSpec
from strategies import register
from strategies.base import MAX_POPULATION, OK, Objective, Observation, Strategy
from strategies.ranking import best_first


@register
class RegularizedEvolution(Strategy):
    name = "evolution"
    option_types: ClassVar[Mapping[str, Opt]] = {
        "population_size": Opt("int", min=1, max=MAX_POPULATION),
        "sample_size": Opt("int", min=1, max=MAX_POPULATION),
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
        population_size: int = 50,
        sample_size: int = 10,
        crossover_prob: float = 0.0,
    ) -> None:
        super().__init__(space, objectives, seed=seed, constraints=constraints, initial=initial)
        if not 1 <= sample_size <= population_size:
            raise ValueError("need 1 <= sample_size <= population_size")
        self.population_size = population_size
        self.sample_size = sample_size
        self.crossover_prob = crossover_prob
        self.population: deque[Observation] = deque(maxlen=population_size)

    def _reset_state(self) -> None:
        self.population.clear()

    def _observe(self, obs: Observation) -> None:
        if obs.status == OK:
            self.population.append(obs)

    def _tournament(self) -> ArchSpec:
        members = list(self.population)
        picks = self.rng.choice(len(members), size=self.sample_size, replace=False)
        return best_first(self, [members[i] for i in picks], 1)[0].spec

    def _propose(self, n: int) -> list[tuple[ArchSpec, str]]:
        if len(self.population) < self.population_size:
            return self._random(n)
        out = []
        for _ in range(n):
            parent = self._tournament()
            if self.crossover_prob and self.rng.random() < self.crossover_prob:
                child = self.space.crossover(parent, self._tournament(), self.rng)
                out.append((self.space.mutate(child, self.rng), "crossover+mutation"))
            else:
                out.append((self.space.mutate(parent, self.rng), "mutation"))
        return out
