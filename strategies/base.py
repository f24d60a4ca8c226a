"""The ask/tell protocol every search strategy implements.

Who calls what, when: a driver (the local loop, a Ray searcher, a tabular benchmark) calls
`ask(n)` for candidates, evaluates each candidate's ``spec`` however it likes, and calls `tell`
with the metrics (or a failure). The strategy never evaluates anything, never touches torch or the
file system, and draws randomness only from its own seeded `numpy.random.Generator`.

A strategy never proposes a spec it has proposed before (recognised by spec id); when a space is
nearly exhausted, `ask` returns fewer candidates rather than loop. `state_dict()` is JSON-ready and
`load_state_dict()` restores it, so that a resumed strategy continues exactly as the original would
have: the state is the RNG state, the history in tell order and the pending candidates, and every
strategy rebuilds its internal state (populations, archives) from the history.

A driver that keeps the history elsewhere (a run's trial records) checkpoints with
`checkpoint_state()` instead: the same state without the history, so its size does not grow with
the run, and restores with `restore(state, history)`, handing the history back from its records.
History read back that way may carry `StoredCandidate`s, whose specs are loaded only when a
strategy looks at them (NSGA-II looks at its parents' specs, not at the 100,000 it has seen).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from search_space.declare.decisions import DecisionSpace
from search_space.declare.schema import Constraint
from search_space.option_types import Opt
from search_space.spec import ArchSpec
from search_space.status import StringEnum, TrialStatus, finished_status


class Direction(StringEnum):
    """Which way an objective (or a promotion rule) goes. A `str` enum: equal to its string, and
    written to configs, checkpoints and records as that string."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


# the module-level names strategies have always imported, now the enum members
MAXIMIZE, MINIMIZE = Direction.MAXIMIZE, Direction.MINIMIZE
OK, FAILED, PRUNED = TrialStatus.OK, TrialStatus.FAILED, TrialStatus.PRUNED

MAX_POPULATION = 100_000  # populations, archives, initial draws: more is a typo, not a plan


@dataclass(frozen=True)
class Objective:
    """A metric to optimise. ``name`` carries the unit where it has one (``latency_ms@raspi4``)."""

    name: str
    direction: Direction = MAXIMIZE
    unit: str = ""

    def __post_init__(self) -> None:
        if self.direction not in Direction.values():
            raise ValueError(
                f"objective {self.name!r}: direction must be {MAXIMIZE!r} or "
                f"{MINIMIZE!r}, got {self.direction!r}"
            )
        object.__setattr__(self, "direction", Direction(self.direction))

    def loss(self, value: float) -> float:
        """The value as a quantity to minimise (maximised objectives are negated)."""
        return -value if self.direction == MAXIMIZE else value


@dataclass(frozen=True)
class Candidate:
    """A proposed architecture. ``number`` counts asks from 0; ``origin`` says how it was made."""

    spec: ArchSpec
    number: int
    origin: str = "random"

    @property
    def spec_id(self) -> str:
        return self.spec.id


class StoredCandidate(Candidate):
    """A candidate read back from where a driver keeps it: the spec id is known at once, the
    spec itself comes from ``load(number)`` each time it is used (the loader caches what it
    likes), so a history of 100,000 of them costs little memory and no parsing until needed."""

    def __init__(
        self, number: int, origin: str, spec_id: str, load: Callable[[int], ArchSpec]
    ) -> None:
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "_spec_id", spec_id)
        object.__setattr__(self, "_load", load)

    @property  # type: ignore[override]
    def spec(self) -> ArchSpec:
        return self._load(self.number)  # type: ignore[attr-defined, no-any-return]

    @property
    def spec_id(self) -> str:
        return self._spec_id  # type: ignore[attr-defined, no-any-return]


@dataclass(frozen=True)
class Observation:
    """What the driver reported for a candidate."""

    candidate: Candidate
    metrics: Mapping[str, float] = field(default_factory=dict)
    status: TrialStatus = OK

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", finished_status(self.status, "observation status"))

    @property
    def spec(self) -> ArchSpec:
        return self.candidate.spec


Told = Observation | tuple[Candidate, Mapping[str, float] | None]


def losses(obs: Observation, objectives: Sequence[Objective]) -> np.ndarray:
    """The objective vector to minimise; failed or incomplete results are +inf everywhere."""
    values = [obs.metrics.get(o.name, math.nan) for o in objectives]
    if obs.status != OK or any(not math.isfinite(v) for v in values):
        return np.full(len(objectives), np.inf)
    return np.array([o.loss(v) for o, v in zip(objectives, values, strict=True)])


def violation(obs: Observation, constraints: Sequence[Constraint]) -> float:
    """Total relative amount by which ``obs`` breaks the constraints (0 when feasible).

    Feasibility-first selection compares this before any objective, so an infeasible candidate
    never beats a feasible one; among infeasible ones, the smaller breach wins. A missing metric
    or a failed evaluation counts as infinitely infeasible.
    """
    if obs.status != OK:
        return math.inf
    total = 0.0
    for c in constraints:
        value = obs.metrics.get(c.metric)
        if value is None or not math.isfinite(value):
            return math.inf
        if c.max is not None and value > c.max:
            total += (value - c.max) / max(abs(c.max), 1e-12)
        if c.min is not None and value < c.min:
            total += (c.min - value) / max(abs(c.min), 1e-12)
    return total


class Strategy:
    """Base class: bookkeeping for ask/tell, deduplication, state; subclasses propose specs.

    Subclasses implement `_propose(n)` (new specs with an origin label, using ``self.rng``) and
    may override `_observe(obs)` to update internal state from one observation; `_observe` must
    not draw randomness, so that replaying the history restores the state exactly.
    """

    name: ClassVar[str] = ""
    max_retries: ClassVar[int] = 200
    # the keyword options of the constructor with their types and ranges (`Opt`), checked
    # when a run config is read; None: not declared (a third-party strategy), the constructor
    # alone checks them
    option_types: ClassVar[Mapping[str, Opt] | None] = None

    def __init__(
        self,
        space: DecisionSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] | None = None,
        initial: Sequence[ArchSpec] = (),
    ) -> None:
        if not objectives:
            raise ValueError("a strategy needs at least one objective")
        self.space = space
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints or ())
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.history: list[Observation] = []
        self.pending: dict[str, Candidate] = {}
        self._seen: set[str] = set()
        self._asked = 0
        self._initial = [s for s in initial if space.contains(s, check_constraints=False)]

    # -- protocol ----------------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[Candidate]:
        """Up to ``n`` new candidates (fewer only when no unseen spec can be found)."""
        out: list[Candidate] = []
        while len(out) < n and self._initial:
            spec = self._initial.pop(0)
            if spec.id not in self._seen:
                out.append(self._register(spec, "initial"))
        retries = 0
        while len(out) < n and retries < self.max_retries:
            proposals = self._propose(n - len(out))
            fresh = 0
            for spec, origin in proposals:
                if spec.id not in self._seen and len(out) < n:
                    out.append(self._register(spec, origin))
                    fresh += 1
            retries += 1 if fresh == 0 else 0
        return out

    def tell(self, results: Iterable[Told]) -> None:
        """Reports results: `Observation`s or ``(candidate, metrics)`` pairs, where metrics of
        None (or containing NaN) mark a failed evaluation."""
        for item in results:
            obs = item if isinstance(item, Observation) else _as_observation(*item)
            spec_id = obs.candidate.spec_id
            if spec_id not in self.pending:
                raise ValueError(f"tell: candidate {spec_id} was not asked or was already told")
            del self.pending[spec_id]
            self.history.append(obs)
            self._observe(obs)

    # -- to implement -----------------------------------------------------------------------------
    def _propose(self, n: int) -> list[tuple[ArchSpec, str]]:
        raise NotImplementedError

    def _observe(self, obs: Observation) -> None:
        """Updates internal state from one observation (no randomness here)."""

    # -- helpers for subclasses --------------------------------------------------------------------
    def _register(self, spec: ArchSpec, origin: str) -> Candidate:
        candidate = Candidate(spec, self._asked, origin)
        self._asked += 1
        self._seen.add(spec.id)
        self.pending[spec.id] = candidate
        return candidate

    def _random(self, n: int) -> list[tuple[ArchSpec, str]]:
        return [(self.space.sample(self.rng), "random") for _ in range(n)]

    def losses(self, obs: Observation) -> np.ndarray:
        return losses(obs, self.objectives)

    def violation(self, obs: Observation) -> float:
        return violation(obs, self.constraints)

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: RNG, counters, history and pending candidates."""
        state = self.checkpoint_state()
        state["history"] = [_obs_to_dict(o) for o in self.history]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores `state_dict` output; the strategy then continues as the original would."""
        self.restore(state, [_obs_from_dict(item) for item in state["history"]])

    def checkpoint_state(self) -> dict[str, Any]:
        """`state_dict` without the history (``told`` says how long it was): bounded in size,
        for drivers that keep the history themselves and hand it back to `restore`."""
        return {
            "strategy": self.name,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "asked": self._asked,
            "told": len(self.history),
            "pending": [_candidate_to_dict(c) for c in self.pending.values()],
            "initial": [s.to_dict() for s in self._initial],
        }

    def restore(self, state: Mapping[str, Any], history: Iterable[Observation]) -> None:
        """Restores a `checkpoint_state` with the history it was taken after (in tell order)."""
        if state.get("strategy") != self.name:
            raise ValueError(
                f"state of strategy {state.get('strategy')!r} cannot be loaded into {self.name!r}"
            )
        self._reset_state()
        self.history, self.pending, self._seen = [], {}, set()
        for obs in history:
            self.history.append(obs)
            self._seen.add(obs.candidate.spec_id)
            self._observe(obs)
        told = state.get("told")
        if told is not None and int(told) != len(self.history):
            raise ValueError(f"the state was taken after {told} results; {len(self.history)} given")
        for item in state["pending"]:
            cand = _candidate_from_dict(item)
            self.pending[cand.spec.id] = cand
            self._seen.add(cand.spec.id)
        self._initial = [ArchSpec.from_dict(d) for d in state.get("initial", [])]
        self._asked = int(state["asked"])
        self.rng.bit_generator.state = state["rng"]

    def _reset_state(self) -> None:
        """Clears internal state before a history replay (subclasses with state override)."""


def _as_observation(candidate: Candidate, metrics: Mapping[str, float] | None) -> Observation:
    if metrics is None:
        return Observation(candidate, {}, FAILED)
    clean = {k: float(v) for k, v in metrics.items()}
    ok = all(math.isfinite(v) for v in clean.values())
    return Observation(candidate, clean, OK if ok else FAILED)


def _candidate_to_dict(c: Candidate) -> dict[str, Any]:
    return {"spec": c.spec.to_dict(), "number": c.number, "origin": c.origin}


def _candidate_from_dict(d: Mapping[str, Any]) -> Candidate:
    return Candidate(ArchSpec.from_dict(d["spec"]), int(d["number"]), str(d["origin"]))


def _obs_to_dict(o: Observation) -> dict[str, Any]:
    return {
        "candidate": _candidate_to_dict(o.candidate),
        "metrics": dict(o.metrics),
        "status": o.status,
    }


def _obs_from_dict(d: Mapping[str, Any]) -> Observation:
    return Observation(_candidate_from_dict(d["candidate"]), dict(d["metrics"]), d["status"])
