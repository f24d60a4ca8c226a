"""Pareto local search (Paquete et al. 2004): explore the neighbours of the current non-dominated
archive; with one objective this is first-improvement hill climbing with restarts.

An archive member is "explored" once all of its neighbours (one decision away, see
`DecisionSpace.neighbours`) have been proposed; that is derived from the proposals so far rather
than stored, so a resumed search makes exactly the same choices. Candidates are unproposed
neighbours of a random unexplored archive member; when every member is explored (a local
optimum), the search restarts from random samples. White et al. ("Local search is state of the
art for NAS benchmarks", 2020) found this simple method strong on NAS-Bench-201.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from search_space.declare.decisions import DecisionSpace
from search_space.declare.schema import Constraint
from search_space.option_types import Opt
from search_space.spec import ArchSpec
from strategies import register
from strategies.base import MAX_POPULATION, OK, Objective, Observation, Strategy
from strategies.ranking import rank_and_crowding


@register
class LocalSearch(Strategy):
    name = "local_search"
    option_types: ClassVar[Mapping[str, Opt]] = {"num_init": Opt("int", min=1, max=MAX_POPULATION)}

    def __init__(
        self,
        space: DecisionSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] | None = None,
        initial: Sequence[ArchSpec] = (),
        num_init: int = 10,
    ) -> None:
        super().__init__(space, objectives, seed=seed, constraints=constraints, initial=initial)
        self.num_init = num_init
        self.archive: list[Observation] = []
        self._neighbours: dict[str, list[ArchSpec]] = {}  # a cache of a pure function

    def _reset_state(self) -> None:
        self.archive = []

    def _unproposed_neighbours(self, spec: ArchSpec) -> list[ArchSpec]:
        if spec.id not in self._neighbours:
            self._neighbours[spec.id] = self.space.neighbours(spec)
        return [s for s in self._neighbours[spec.id] if s.id not in self._seen]

    def _observe(self, obs: Observation) -> None:
        if obs.status != OK:
            return
        pool = [*self.archive, obs]
        rank, _ = rank_and_crowding(self, pool)
        self.archive = [o for o, r in zip(pool, rank, strict=True) if r == 0]

    def _propose(self, n: int) -> list[tuple[ArchSpec, str]]:
        if len(self.history) + len(self.pending) < self.num_init or not self.archive:
            return self._random(n)
        out: list[tuple[ArchSpec, str]] = []
        taken: set[str] = set()
        while len(out) < n:
            options = {
                o.candidate.spec_id: [
                    s for s in self._unproposed_neighbours(o.spec) if s.id not in taken
                ]
                for o in self.archive
            }
            members = [o for o in self.archive if options[o.candidate.spec_id]]
            if not members:
                break
            fresh = options[members[int(self.rng.integers(len(members)))].candidate.spec_id]
            for i in self.rng.permutation(len(fresh))[: n - len(out)]:
                out.append((fresh[i], "neighbour"))
                taken.add(fresh[i].id)
        if len(out) < n:  # every archive member is a local optimum: restart at random
            out.extend(self._random(n - len(out)))
        return out
