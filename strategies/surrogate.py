"""Surrogate-guided search (BANANAS-like): a model of every objective over the space's encoding
picks the next architecture from a candidate pool by an acquisition function.

- Model: one `HammingGP` per objective (and per constrained metric) on the one-hot encoding.
- Acquisition: expected improvement for one objective; expected hypervolume improvement
  (Monte Carlo with common random numbers) for two; ParEGO (a random augmented Chebyshev
  scalarisation per ask, then EI) for more. Constraints multiply in the probability of
  feasibility.
- Pool: random points plus the surroundings of the current front: all neighbours of the front
  when the space is small enough to enumerate (NAS-Bench-201's 15,625 cells), mutations of the
  front otherwise (White et al., "BANANAS", 2021: local mutations of the best architectures
  make a strong pool).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
from scipy.special import ndtr

from search_space.declare.decisions import DecisionSpace
from search_space.declare.schema import Constraint
from search_space.option_types import Opt
from search_space.spec import ArchSpec
from strategies import register
from strategies.base import MAX_POPULATION, OK, Objective, Observation, Strategy
from strategies.gp import HammingGP
from strategies.multiobjective import pareto_mask

# every point of a small space with its features, computed once per space object and shared by
# the strategies searching it (a benchmark runs many seeds over one space)
CLIP = 3.0
_ENUMERATIONS: weakref.WeakKeyDictionary[DecisionSpace, list[ArchSpec]] = (
    weakref.WeakKeyDictionary()
)


def _expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """EI for minimisation."""
    z = (best - mu) / sd
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return sd * (z * ndtr(z) + pdf)


def hvi_2d(points: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exclusive hypervolume each of ``points`` (k, 2) would add to ``front`` (minimisation)."""
    front = front[np.all(front < ref, axis=1)]
    front = front[np.argsort(front[:, 0])]
    # staircase of the front: height ref[1] left of the first point, then each point's f2
    edges = np.concatenate([[-np.inf], front[:, 0], [ref[0]]])
    heights = np.concatenate([[ref[1]], np.minimum.accumulate(front[:, 1])])
    left = np.maximum(edges[None, :-1], points[:, :1])
    width = np.clip(np.minimum(edges[None, 1:], ref[0]) - left, 0.0, None)
    height = np.clip(heights[None, :] - points[:, 1:2], 0.0, None)
    return (width * height).sum(axis=1)


@register
class SurrogateSearch(Strategy):
    name = "surrogate"
    option_types: ClassVar[Mapping[str, Opt]] = {
        "num_init": Opt("int", min=1, max=MAX_POPULATION),
        "pool_random": Opt("int", min=0, max=1_000_000),
        "pool_mutations": Opt("int", min=0, max=1_000_000),
        "exhaustive_limit": Opt("int", min=0, max=10_000_000),
        "mc_samples": Opt("int", min=1, max=100_000),
        "refit_every": Opt("int", min=1, max=1_000_000),
    }

    def __init__(
        self,
        space: DecisionSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] | None = None,
        initial: Sequence[ArchSpec] = (),
        num_init: int = 10,
        pool_random: int = 0,
        pool_mutations: int = 300,
        exhaustive_limit: int = 20_000,
        mc_samples: int = 64,
        refit_every: int = 10,
    ) -> None:
        super().__init__(space, objectives, seed=seed, constraints=constraints, initial=initial)
        self.num_init = num_init
        self.pool_random = pool_random
        self.pool_mutations = pool_mutations
        self.exhaustive_limit = exhaustive_limit
        self.mc_samples = mc_samples
        self.refit_every = refit_every
        self._features: dict[str, np.ndarray] = {}  # caches of pure functions of the history
        self._hyper: dict[tuple[str, int], tuple[float, float]] = {}
        self._neighbours: dict[str, list[ArchSpec]] = {}

    # -- features -------------------------------------------------------------------------------
    def _feature(self, spec: ArchSpec) -> np.ndarray:
        if spec.id not in self._features:
            self._features[spec.id] = self.space.one_hot(spec)
        return self._features[spec.id]

    def _observed_feature(self, obs: Observation) -> np.ndarray:
        # by the candidate's id first: a history read back from a run's records loads a spec
        # only the first time its features are needed
        cached = self._features.get(obs.candidate.spec_id)
        return cached if cached is not None else self._feature(obs.spec)

    def _enumeration(self) -> list[ArchSpec] | None:
        """Every point of a small space, computed once per space object."""
        if self.space.cardinality() > self.exhaustive_limit:
            return None
        if self.space not in _ENUMERATIONS:
            _ENUMERATIONS[self.space] = list(self.space.enumerate(limit=self.exhaustive_limit * 4))
        return _ENUMERATIONS[self.space]

    def _pool(
        self, done: list[Observation], on_front: np.ndarray
    ) -> tuple[list[ArchSpec], np.ndarray]:
        """Candidates: a random share of the space plus the surroundings of the current front."""
        front = [o.spec for o, m in zip(done, on_front, strict=True) if m]
        pool: dict[str, ArchSpec] = {}
        specs = self._enumeration()
        if specs is not None:
            for i in self.rng.permutation(len(specs))[: self.pool_random + len(self._seen)]:
                pool.setdefault(specs[i].id, specs[i])
            for parent in front:
                if parent.id not in self._neighbours:
                    self._neighbours[parent.id] = self.space.neighbours(parent)
                for spec in self._neighbours[parent.id]:
                    pool.setdefault(spec.id, spec)
        else:
            for _ in range(self.pool_mutations):
                child = self.space.mutate(front[int(self.rng.integers(len(front)))], self.rng)
                pool.setdefault(child.id, child)
            for _ in range(self.pool_random):
                spec = self.space.sample(self.rng)
                pool.setdefault(spec.id, spec)
        chosen = [s for s in pool.values() if s.id not in self._seen]
        return chosen, np.stack([self._feature(s) for s in chosen]) if chosen else np.zeros(0)

    def _model(self, key: str, feats: np.ndarray, y: np.ndarray) -> HammingGP:
        """A GP whose hyper-parameters are re-searched every ``refit_every`` observations.

        The search runs on the observations up to the last multiple of ``refit_every``, so the
        hyper-parameters depend on the history alone and a resumed run picks the same ones.
        """
        cut = max(self.refit_every, len(y) // self.refit_every * self.refit_every)
        cache_key = (key, cut)
        if cache_key not in self._hyper:
            self._hyper[cache_key] = HammingGP().fit(feats[:cut], y[:cut]).hyper
        return HammingGP().fit(feats, y, hyper=self._hyper[cache_key])

    # -- acquisition ----------------------------------------------------------------------------
    def _front_mask(self, done: list[Observation]) -> np.ndarray:
        losses = np.array([self.losses(o) for o in done])
        feasible = np.array([self.violation(o) == 0 for o in done])
        if not feasible.any():
            feasible[:] = True
        mask = np.zeros(len(done), dtype=bool)
        mask[np.flatnonzero(feasible)] = pareto_mask(losses[feasible])
        return mask

    def _feasibility(self, x: np.ndarray, done: list[Observation], feats: np.ndarray) -> np.ndarray:
        prob = np.ones(len(x))
        for c in self.constraints:
            known = [i for i, o in enumerate(done) if c.metric in o.metrics]
            if len(known) < 2:
                continue
            y = np.array([done[i].metrics[c.metric] for i in known])
            mu, sd = self._model(f"constraint:{c.metric}", feats[known], y).predict(x)
            upper = ndtr((c.max - mu) / sd) if c.max is not None else 1.0
            lower = ndtr((c.min - mu) / sd) if c.min is not None else 0.0
            prob *= np.clip(upper - lower, 0.0, 1.0)
        return prob

    def _acquisition(
        self, x: np.ndarray, done: list[Observation], feats: np.ndarray, on_front: np.ndarray
    ) -> np.ndarray:
        losses = np.array([self.losses(o) for o in done])
        # scale by the current front, not by all results: a few very poor architectures would
        # otherwise squeeze the region that matters into a sliver where model noise dominates
        front = losses[on_front]
        lo, hi = front.min(0), front.max(0)
        spread = np.where(hi > lo, hi - lo, np.maximum(np.abs(lo), 1e-9))
        # values far beyond the front add no hypervolume; clipping them keeps the model's scale
        # set by the architectures that compete for the front
        norm = np.minimum((losses - lo) / spread, CLIP)
        m = len(self.objectives)
        if m == 2:
            return self._ehvi(x, norm, feats, on_front)
        if m > 2:  # ParEGO: one random augmented Chebyshev scalarisation per ask
            w = self.rng.dirichlet(np.ones(m))
            norm = (np.max(w * norm, axis=1) + 0.05 * (w * norm).sum(1))[:, None]
        mu, sd = self._model(f"scalar:{m}", feats, norm[:, 0]).predict(x)
        return _expected_improvement(mu, sd, float(norm[on_front, 0].min()))

    def _ehvi(
        self, x: np.ndarray, norm: np.ndarray, feats: np.ndarray, on_front: np.ndarray
    ) -> np.ndarray:
        front = norm[on_front]
        # the reference point sits past the worst results seen, not at the front's nadir: a
        # box ending at the nadir would give zero improvement to any point that extends the
        # front beyond its current ends
        ref = norm.max(axis=0) + 0.1
        eps = self.rng.standard_normal((self.mc_samples, 2))
        models = [self._model(f"objective:{j}", feats, norm[:, j]).predict(x) for j in range(2)]
        total = np.zeros(len(x))
        for e in eps:  # common random numbers across candidates
            pts = np.stack([mu + e[j] * sd for j, (mu, sd) in enumerate(models)], axis=1)
            total += hvi_2d(pts, front, ref)
        return total / len(eps)

    def _propose(self, n: int) -> list[tuple[ArchSpec, str]]:
        done = [o for o in self.history if o.status == OK]
        if len(done) < max(self.num_init, 2):
            return self._random(n)
        on_front = self._front_mask(done)  # once per ask: pool and acquisition share it
        specs, x = self._pool(done, on_front)
        if not specs:
            return self._random(n)
        feats = np.stack([self._observed_feature(o) for o in done])
        score = self._acquisition(x, done, feats, on_front)
        if self.constraints:
            score = score * self._feasibility(x, done, feats)
        # ties (flat acquisition) are broken at random rather than by pool order
        jitter = self.rng.random(len(score)) * 1e-12
        best = np.argsort(-(score + jitter))[:n]
        return [(specs[i], "surrogate") for i in best]
