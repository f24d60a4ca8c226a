"""Optuna samplers behind mixnas's ask/tell protocol.

Registered names: ``optuna_tpe`` (multivariate, grouped TPE with the constant liar),
``optuna_nsga2``, ``optuna_nsga3``, ``optuna_gp`` and ``optuna_random`` (a check of the adapter).
Options: ``sampler_options`` (keyword arguments for the Optuna sampler, overriding the adapter's
defaults) and, for the NSGA samplers, ``population_size``.

How the space is translated: each proposal is one Optuna trial that walks `DecisionSpace.dims` in
order and suggests only the dimensions that are active given the choices made so far (define by
run), so Optuna never sees a decision the spec ignores. Dimensions with a single choice are not
suggested: they carry no information.

Outcomes told to Optuna: finite objective values as COMPLETE, failed evaluations as FAIL, pruned
ones as PRUNED. Constraints (the strategy's and the space's analytic ones) become Optuna
constraint values ``(value - max) / |max|`` and ``(min - value) / |min|`` (<= 0 is feasible;
relative like `strategies.base.violation` so that bounds in different units add up sensibly).
A proposal that breaks the space's analytic constraints is never returned: it is told PRUNED with
its constraint values so that the sampler learns to avoid it.

Duplicates: Optuna may propose a spec already asked. Such a trial is told at once with the
outcome already known for that spec, or FAIL while the original is still pending, and the slot is
asked again (the base class bounds the retries).

Resume: Optuna's sampler state is not JSON, so `load_state_dict` rebuilds a study with the same
seed and replays the recorded sequence of Optuna operations (every ask, duplicate tell and tell,
in their original order). The continuation after loading then equals the original's, provided the
same Optuna version and sampler options; a replay that diverges raises instead of continuing
silently. Replaying costs about as much sampler time as the original run.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import Trial, TrialState

from search_space.costs import spec_cost
from search_space.declare.decisions import DecisionSpace
from search_space.declare.schema import ANALYTIC_METRICS, Constraint
from search_space.option_types import Opt
from search_space.spec import ArchSpec
from strategies import register
from strategies.base import (
    MAX_POPULATION,
    MAXIMIZE,
    OK,
    PRUNED,
    Objective,
    Observation,
    Strategy,
)

# Optuna 5 reads constraint values that trials carry (`Trial.set_constraint`) and deprecates the
# samplers' ``constraints_func``; older versions only have ``constraints_func``, which we feed
# from a user attribute.
_SET_CONSTRAINT = hasattr(Trial, "set_constraint")
_CONSTRAINTS_ATTR = "constraints"

# Event kinds of the replay log; each event is ``[kind, spec_id]``.
_ASK = "ask"  # a fresh proposal handed to the base class
_COPY = "copy"  # a duplicate of a spec with a known outcome, told that outcome
_DUP_PENDING = "fail"  # a duplicate of a spec still pending (or earlier in the batch), told FAIL
_SKIP = "skip"  # breaks the space's analytic constraints, told PRUNED with constraint values
_TELL = "tell"  # an observation reported by the driver
_PROPOSAL_EVENTS = (_ASK, _COPY, _DUP_PENDING, _SKIP)


@dataclass(frozen=True)
class _Outcome:
    """What Optuna was (or will be) told for a spec; reused verbatim for its duplicates."""

    state: TrialState
    values: tuple[float, ...] | None = None
    constraints: tuple[float, ...] | None = None


_FAIL = _Outcome(TrialState.FAIL)


@dataclass(frozen=True)
class _Bound:
    """One side of a constraint: ``sign * (value - limit) / scale`` is <= 0 when it holds."""

    metric: str
    limit: float
    sign: float

    def value(self, metric_value: float) -> float:
        return self.sign * (metric_value - self.limit) / max(abs(self.limit), 1e-12)


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna logs every trial at INFO and warns about experimental options; silence both for
    the duration of one adapter call only, restoring the caller's verbosity afterwards (raising
    it to WARNING, never lowering a stricter setting)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(previous, optuna.logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(previous)


def _supported(cls: type, options: Mapping[str, Any]) -> dict[str, Any]:
    """The adapter's default options that ``cls`` accepts: defaults added in newer Optuna
    versions are dropped on older ones (user options are passed as given, so typos raise)."""
    accepted = inspect.signature(cls).parameters
    return {k: v for k, v in options.items() if k in accepted}


def suggest_decisions(trial: Trial, space: DecisionSpace) -> np.ndarray:
    """The space's decisions suggested by an Optuna trial, define by run: only the dimensions
    that are active given the choices so far, and never one with a single choice."""
    values = np.zeros(len(space.dims), dtype=np.int64)
    # whether a dimension is active depends only on earlier ones, so the mask computed from the
    # choices so far (later entries still 0) is right for every dimension not yet chosen; it
    # only needs recomputing after a choice that differs from the 0 it assumed
    active = space.active_mask(values)
    for i, dim in enumerate(space.dims):
        if not active[i] or dim.size < 2:
            continue
        if dim.ordinal:
            v = trial.suggest_int(dim.name, 0, dim.size - 1)
        else:
            v = trial.suggest_categorical(dim.name, list(range(dim.size)))
        if v != values[i]:
            values[i] = v
            active = space.active_mask(values)
    return values


class OptunaStrategy(Strategy):
    """Base of the registered adapters; subclasses name a sampler and its default options."""

    name: ClassVar[str] = ""
    # the sampler's own keyword arguments; Optuna checks them when the study is built
    option_types: ClassVar[Mapping[str, Opt] | None] = {
        "sampler_options": Opt("mapping", nullable=True)
    }

    def __init__(
        self,
        space: DecisionSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        constraints: Sequence[Constraint] | None = None,
        initial: Sequence[ArchSpec] = (),
        sampler_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, objectives, seed=seed, constraints=constraints, initial=initial)
        self.sampler_options = dict(sampler_options or {})
        self._check_available()
        # bounds by key, so that a constraint declared by both the space and the caller counts once
        bounds: dict[str, _Bound] = {}
        space_bounds: dict[str, _Bound] = {}
        for c, is_space in [(c, False) for c in self.constraints] + [
            (c, True) for c in space.constraints if c.analytic
        ]:
            for key, bound in _bounds_of(c):
                bounds.setdefault(key, bound)
                if is_space:
                    space_bounds[key] = bound
        self._bounds = bounds
        self._space_bounds = space_bounds
        self._replaying = False
        self._reset_state()  # builds the study, so bad sampler options fail here

    # -- sampler ---------------------------------------------------------------------------------
    def _check_available(self) -> None:
        """Raises a readable error when the sampler cannot run in this environment."""

    def _sampler_class(self) -> type[optuna.samplers.BaseSampler]:
        raise NotImplementedError

    def _default_options(self) -> dict[str, Any]:
        return {}

    def _new_sampler(self) -> optuna.samplers.BaseSampler:
        cls = self._sampler_class()
        # numpy's RandomState (which Optuna seeds) takes 32-bit seeds only
        options = {"seed": int(self.seed) % 2**32, **self._default_options()}
        options = _supported(cls, options)
        if self._bounds and not _SET_CONSTRAINT:
            options["constraints_func"] = _constraints_from_attr
        options.update(self.sampler_options)
        with _quiet():
            return cls(**options)

    # -- protocol --------------------------------------------------------------------------------
    def _propose(self, n: int) -> list[tuple[ArchSpec, str]]:
        # one Optuna trial per slot: duplicates and infeasible proposals are told at once and
        # leave their slot empty; the base class calls again for the missing ones
        out: list[tuple[ArchSpec, str]] = []
        with _quiet():
            for _ in range(n):
                trial, spec = self._ask_trial()
                kind = self._classify(spec)
                self._apply(kind, trial, spec)
                self._events.append([kind, spec.id])
                if kind == _ASK:
                    out.append((spec, self.name))
        return out

    def _observe(self, obs: Observation) -> None:
        if self._replaying:  # load_state_dict replays the Optuna log itself, in its true order
            return
        with _quiet():
            self._tell(obs)
        self._events.append([_TELL, obs.candidate.spec_id])

    # -- state -----------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        with _quiet():
            directions = [
                StudyDirection.MAXIMIZE if o.direction == MAXIMIZE else StudyDirection.MINIMIZE
                for o in self.objectives
            ]
            self._study = optuna.create_study(directions=directions, sampler=self._new_sampler())
        self._running: dict[str, Trial] = {}  # spec id -> its trial, while the spec is pending
        self._outcome: dict[str, _Outcome] = {}  # spec id -> what Optuna was told for it
        self._trial_number: dict[str, int] = {}  # spec id -> Optuna trial number
        self._events: list[list[str]] = []

    def checkpoint_state(self) -> dict[str, Any]:
        # the Optuna event log is the one part of a checkpoint that grows with the run: Optuna's
        # sampler state is not JSON, and replaying every ask and tell is the only way back to it
        state = super().checkpoint_state()
        state["optuna"] = {"version": optuna.__version__, "events": [list(e) for e in self._events]}
        return state

    def restore(self, state: Mapping[str, Any], history: Iterable[Observation]) -> None:
        saved = state.get("optuna")
        if not isinstance(saved, Mapping) or "events" not in saved:
            raise ValueError(f"{self.name}: the state has no Optuna event log to replay")
        # Optuna's sampler must be seeded as the original was, whatever this instance got
        self.seed = int(state["seed"])
        self._replaying = True
        try:
            super().restore(state, history)  # resets the study; history and pending come back
        finally:
            self._replaying = False
        with _quiet():
            self._replay(saved["events"], str(saved.get("version", "?")))

    def _replay(self, events: Sequence[Sequence[str]], version: str) -> None:
        """Repeats the original ask/tell sequence on the fresh study (same seed), checking that
        every proposal comes out as it did the first time."""
        told = iter(self.history)
        for number, (kind, spec_id) in enumerate(events):
            if kind in _PROPOSAL_EVENTS:
                trial, spec = self._ask_trial()
                if spec.id != spec_id:
                    raise RuntimeError(
                        f"{self.name}: resuming diverged at event {number}: Optuna proposed "
                        f"{spec.id} where the saved run had {spec_id}. Resume needs the same "
                        f"Optuna version (saved with {version}, running {optuna.__version__}), "
                        "seed and sampler options."
                    )
                if kind == _COPY and spec_id not in self._outcome:
                    raise RuntimeError(f"{self.name}: event log inconsistent at event {number}")
                self._apply(kind, trial, spec)
            elif kind == _TELL:
                obs = next(told, None)
                if obs is None or obs.candidate.spec_id != spec_id:
                    raise RuntimeError(
                        f"{self.name}: event log and history disagree at event {number}"
                    )
                self._tell(obs)
            else:
                raise ValueError(f"{self.name}: unknown event {kind!r} in the saved state")
            self._events.append([kind, spec_id])
        if next(told, None) is not None:
            raise RuntimeError(f"{self.name}: history has observations the event log lacks")

    # -- helpers ---------------------------------------------------------------------------------
    def _ask_trial(self, fixed: Mapping[str, int] | None = None) -> tuple[Trial, ArchSpec]:
        """A new trial and the spec it decides, suggesting active dimensions in order."""
        if fixed is not None:
            self._study.enqueue_trial(dict(fixed))
        trial = self._study.ask()
        return trial, self.space.decode(suggest_decisions(trial, self.space))

    def _classify(self, spec: ArchSpec) -> str:
        if spec.id in self._outcome:
            return _COPY
        if spec.id in self._seen or spec.id in self._trial_number:
            return _DUP_PENDING
        if self._space_bounds and any(v > 0 for v in self._space_violations(spec)):
            return _SKIP
        return _ASK

    def _apply(self, kind: str, trial: Trial, spec: ArchSpec) -> None:
        if kind == _ASK:
            self._running[spec.id] = trial
            self._trial_number[spec.id] = trial.number
        elif kind == _COPY:
            self._finish(trial, self._outcome[spec.id])
        elif kind == _DUP_PENDING:
            self._finish(trial, _FAIL)
        else:  # _SKIP
            # the broken space bound makes the trial infeasible; a bound on a metric only the
            # driver can measure is unknown here and set to 0 (it cannot hide that breach)
            cost = spec_cost(spec).to_dict()
            constraints = tuple(
                b.value(float(cost[b.metric])) if b.metric in cost else 0.0
                for b in self._bounds.values()
            )
            outcome = _Outcome(TrialState.PRUNED, None, constraints)
            self._outcome[spec.id] = outcome
            self._trial_number[spec.id] = trial.number
            self._finish(trial, outcome)

    def _tell(self, obs: Observation) -> None:
        spec = obs.spec
        outcome = self._outcome_of(obs)
        self._outcome[spec.id] = outcome
        trial = self._running.pop(spec.id, None)
        if trial is None:
            # an initial spec (asked by the base class, not by Optuna): enqueue its decisions so
            # that Optuna records a trial for it through the same define-by-run walk
            values = self.space.encode(spec)
            fixed = {
                d.name: int(v)
                for d, v in zip(self.space.dims, values, strict=True)
                if v >= 0 and d.size > 1
            }
            trial, replayed = self._ask_trial(fixed)
            if replayed.id != spec.id:  # pragma: no cover - encode and the walk must agree
                raise RuntimeError(f"{self.name}: could not enqueue initial spec {spec.id}")
            self._trial_number[spec.id] = trial.number
        self._finish(trial, outcome)

    def _outcome_of(self, obs: Observation) -> _Outcome:
        if obs.status not in (OK, PRUNED):  # failed
            return _FAIL
        constraints = self._constraint_values(obs.spec, obs.metrics)
        if self._bounds and constraints is None:
            return _FAIL  # a constrained metric was not reported: feasibility is unknown
        if obs.status == PRUNED:
            return _Outcome(TrialState.PRUNED, None, constraints)
        loss = self.losses(obs)
        if not np.all(np.isfinite(loss)):
            return _FAIL
        values = tuple(float(obs.metrics[o.name]) for o in self.objectives)
        return _Outcome(TrialState.COMPLETE, values, constraints)

    def _constraint_values(
        self, spec: ArchSpec, metrics: Mapping[str, float]
    ) -> tuple[float, ...] | None:
        """One value per bound (None if a metric is missing); analytic metrics the driver did
        not report are computed from the spec."""
        if not self._bounds:
            return None
        cost: Mapping[str, float] | None = None
        out = []
        for bound in self._bounds.values():
            value = metrics.get(bound.metric)
            if value is None and bound.metric in ANALYTIC_METRICS:
                cost = cost if cost is not None else spec_cost(spec).to_dict()
                value = cost[bound.metric]
            if value is None or not math.isfinite(value):
                return None
            out.append(bound.value(float(value)))
        return tuple(out)

    def _space_violations(self, spec: ArchSpec) -> list[float]:
        cost = spec_cost(spec).to_dict()
        return [b.value(float(cost[b.metric])) for b in self._space_bounds.values()]

    def _finish(self, trial: Trial, outcome: _Outcome) -> None:
        if outcome.constraints is not None and outcome.state != TrialState.FAIL:
            if _SET_CONSTRAINT:
                for key, value in zip(self._bounds, outcome.constraints, strict=True):
                    trial.set_constraint(key, value)
            else:
                trial.set_user_attr(_CONSTRAINTS_ATTR, list(outcome.constraints))
        # only COMPLETE outcomes carry values (PRUNED and FAIL take none)
        values = list(outcome.values) if outcome.values is not None else None
        self._study.tell(trial, values, state=outcome.state)


def _bounds_of(c: Constraint) -> list[tuple[str, _Bound]]:
    out = []
    if c.max is not None:
        out.append((f"{c.metric}<={c.max:g}", _Bound(c.metric, float(c.max), 1.0)))
    if c.min is not None:
        out.append((f"{c.metric}>={c.min:g}", _Bound(c.metric, float(c.min), -1.0)))
    return out


def _constraints_from_attr(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    # Optuna < 5 only: samplers call this for COMPLETE and PRUNED trials, which always carry it
    return tuple(trial.user_attrs[_CONSTRAINTS_ATTR])


@register
class OptunaTPE(OptunaStrategy):
    """Tree-structured Parzen estimator: multivariate and grouped, so that the conditional
    decisions of a subspace are modelled jointly; the constant liar keeps the trials of one
    batch apart."""

    name = "optuna_tpe"

    def _sampler_class(self) -> type[optuna.samplers.BaseSampler]:
        return optuna.samplers.TPESampler

    def _default_options(self) -> dict[str, Any]:
        return {"multivariate": True, "group": True, "constant_liar": True}


class _NSGA(OptunaStrategy):
    option_types: ClassVar[Mapping[str, Opt] | None] = {
        **(OptunaStrategy.option_types or {}),
        # Optuna's NSGA samplers need two parents
        "population_size": Opt("int", min=2, max=MAX_POPULATION, nullable=True),
    }

    def __init__(
        self,
        space: DecisionSpace,
        objectives: Sequence[Objective],
        *,
        seed: int,
        population_size: int | None = None,
        **options: Any,
    ) -> None:
        self.population_size = population_size
        super().__init__(space, objectives, seed=seed, **options)

    def _default_options(self) -> dict[str, Any]:
        return {} if self.population_size is None else {"population_size": self.population_size}


@register
class OptunaNSGA2(_NSGA):
    """NSGA-II. Optuna evolves only the decisions active in every evaluated trial; the
    conditional ones are drawn at random."""

    name = "optuna_nsga2"

    def _sampler_class(self) -> type[optuna.samplers.BaseSampler]:
        return optuna.samplers.NSGAIISampler


@register
class OptunaNSGA3(_NSGA):
    """NSGA-III (reference-point niching, for three or more objectives)."""

    name = "optuna_nsga3"

    def _sampler_class(self) -> type[optuna.samplers.BaseSampler]:
        return optuna.samplers.NSGAIIISampler


@register
class OptunaGP(OptunaStrategy):
    """Gaussian-process Bayesian optimisation. Optuna's GPSampler needs torch and scipy."""

    name = "optuna_gp"

    def _check_available(self) -> None:
        if not hasattr(optuna.samplers, "GPSampler"):
            raise ImportError(
                f"{self.name}: Optuna {optuna.__version__} has no GPSampler (added in 3.6); "
                "upgrade optuna or use optuna_tpe"
            )
        # find_spec looks for the packages without importing them (torch is slow to import)
        missing = [m for m in ("torch", "scipy") if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(
                f"{self.name}: Optuna's GPSampler needs {' and '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not installed; install "
                f"{' '.join(missing)} or use optuna_tpe"
            )

    def _sampler_class(self) -> type[optuna.samplers.BaseSampler]:
        return optuna.samplers.GPSampler

    def _default_options(self) -> dict[str, Any]:
        # conditional decisions fall outside the GP's fixed search space and are drawn at
        # random; Optuna would log a warning for each of them on every trial
        return {"warn_independent_sampling": False}


@register
class OptunaRandom(OptunaStrategy):
    """Optuna's RandomSampler: a check of the adapter against the native random search."""

    name = "optuna_random"

    def _sampler_class(self) -> type[optuna.samplers.BaseSampler]:
        return optuna.samplers.RandomSampler
