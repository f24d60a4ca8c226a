"""Ranking observations: feasibility first, then Pareto rank, then crowding.

Shared by the strategies that select parents or incumbents, so that "better" means the same thing
everywhere: a feasible result beats an infeasible one, a smaller constraint breach beats a larger
one, then non-dominated sorting on the objective losses, then crowding distance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.base import Observation, Strategy
from strategies.multiobjective import constrained_non_dominated_sort, crowding_distance


def rank_and_crowding(
    strategy: Strategy, observations: Sequence[Observation]
) -> tuple[np.ndarray, np.ndarray]:
    """Per observation: its front index (0 best) and crowding distance within its front."""
    if not observations:
        return np.zeros(0, dtype=int), np.zeros(0)
    losses = np.array([strategy.losses(o) for o in observations], dtype=float)
    breach = np.array([strategy.violation(o) for o in observations], dtype=float)
    rank = np.zeros(len(observations), dtype=int)
    crowd = np.zeros(len(observations))
    for i, front in enumerate(constrained_non_dominated_sort(losses, breach)):
        rank[front] = i
        finite = np.all(np.isfinite(losses[front]), axis=1)
        crowd[front] = crowding_distance(losses[front]) if finite.all() else 0.0
    return rank, crowd


def order(strategy: Strategy, observations: Sequence[Observation]) -> np.ndarray:
    """Indices of ``observations`` from best to worst (rank ascending, crowding descending)."""
    rank, crowd = rank_and_crowding(strategy, observations)
    return np.lexsort((-crowd, rank))


def best_first(
    strategy: Strategy, observations: Sequence[Observation], k: int
) -> list[Observation]:
    """The ``k`` best observations."""
    return [observations[i] for i in order(strategy, observations)[:k]]
