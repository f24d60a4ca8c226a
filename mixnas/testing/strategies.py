"""The contract of a search strategy, for the built-ins and for plug-ins.

On a toy space with a known optimum (objectives computed from analytic costs, so no torch):
candidates are new points of the space, at most as many as asked; failures do not stop the
search; constraints are honoured by feasibility-first selection; a strategy resumed from its JSON
state, or from a bounded checkpoint and a lazily loaded history, continues exactly as the
original; seeded runs repeat; the search gets close to the optimum within a modest budget; every
constructor option is declared (`Strategy.option_types`) and accepts its default.

Use from a plug-in's tests::

    import pytest
    from mixnas.testing.strategies import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_my_strategy(check):
        check("my_strategy")
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import strategies
from search_space import ArchSpec, SearchSpace, spec_cost
from search_space.declare.schema import Constraint
from search_space.option_types import check_options
from strategies import FAILED, MAXIMIZE, MINIMIZE, OK, Objective
from strategies.base import StoredCandidate

TOY: dict[str, Any] = {
    "name": "toy",
    "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 5},
    "stem": [{"name": "patch_embed", "patch_size": [2, 4]}],
    "token_mixers": {"attention": {"head_dim": 8}, "pooling": {}, "dwconv": {"kernel": [3, 5]}},
    "channel_mixers": {"mlp": {"ratio": [1.0, 2.0, 4.0]}},
    "stages": [
        {"depth": [1, 2], "width": [16, 32], "patterns": ["uniform"]},
        {
            "depth": [1, 2, 3],
            "width": [32, 48],
            "downsample": "patch_merging",
            "patterns": ["uniform", {"last_k": [1], "tail": ["attention"]}],
        },
    ],
    "head": {"name": "classifier"},
}
ONE = [Objective("error", MINIMIZE)]
TWO = [Objective("params", MAXIMIZE), Objective("macs", MINIMIZE)]


@cache
def toy_space() -> SearchSpace:
    return SearchSpace.from_dict(TOY, source="toy")


@cache
def _all() -> tuple[ArchSpec, ...]:
    return tuple(toy_space().enumerate())


@cache
def _target() -> int:
    specs = _all()
    return sorted(spec_cost(s).params for s in specs)[len(specs) // 3]


def toy_metrics(spec: ArchSpec) -> dict[str, float]:
    """``error`` (distance to a target parameter count, minimum 0), ``params``, ``macs``."""
    cost = spec_cost(spec)
    target = _target()
    return {"error": abs(cost.params - target) / target, "params": cost.params, "macs": cost.macs}


def create(
    name: str, objectives: Sequence[Objective] = ONE, seed: int = 0, **kwargs: Any
) -> strategies.Strategy:
    """Strategy ``name`` over the toy space."""
    return strategies.create(name, toy_space(), objectives, seed=seed, **kwargs)


def run(strategy: strategies.Strategy, steps: int, batch: int = 1) -> list[str]:
    """``steps`` rounds of ask(batch)/tell with the toy metrics; the asked spec ids."""
    ids = []
    for _ in range(steps):
        for cand in strategy.ask(batch):
            ids.append(cand.spec.id)
            strategy.tell([(cand, toy_metrics(cand.spec))])
    return ids


def check_candidates_are_new_points_of_the_space(name: str) -> None:
    strategy = create(name, TWO)
    seen: set[str] = set()
    for batch in (1, 3, 5, 1, 4):
        cands = strategy.ask(batch)
        assert 0 < len(cands) <= batch, f"{name}: asked for {batch}, got {len(cands)}"
        for c in cands:
            assert toy_space().contains(c.spec, check_constraints=False), f"{name}: not in space"
            assert c.spec.id not in seen, f"{name}: asked {c.spec.id} twice"
            seen.add(c.spec.id)
        strategy.tell([(c, toy_metrics(c.spec)) for c in cands])
    assert len(strategy.history) == len(seen)


def check_failures_are_recorded_and_the_search_goes_on(name: str) -> None:
    strategy = create(name, TWO)
    for i in range(25):
        (cand,) = strategy.ask(1)
        metrics = (
            None
            if i % 3 == 0
            else ({"params": math.nan, "macs": 1.0} if i % 3 == 1 else toy_metrics(cand.spec))
        )
        strategy.tell([(cand, metrics)])
    statuses = [o.status for o in strategy.history]
    assert statuses.count(FAILED) >= 16 and statuses.count(OK) >= 8, statuses


def check_resume_continues_exactly(name: str) -> None:
    original = create(name, TWO, seed=3)
    run(original, 18)
    pending = original.ask(2)  # resume with evaluations still in flight
    state = json.loads(json.dumps(original.state_dict()))
    resumed = create(name, TWO, seed=99)
    resumed.load_state_dict(state)
    for strategy in (original, resumed):
        strategy.tell([(c, toy_metrics(c.spec)) for c in pending])
    assert run(original, 12) == run(resumed, 12)


def check_resume_from_a_bounded_checkpoint_and_a_lazy_history(name: str) -> None:
    """What a run driver does: a checkpoint without the history, the history handed back as
    `StoredCandidate`s whose specs load on demand; the strategy continues exactly."""
    original = create(name, TWO, seed=3)
    run(original, 18)
    pending = original.ask(2)
    state = json.loads(json.dumps(original.checkpoint_state()))
    assert "history" not in state and state["told"] == 18
    assert len(json.dumps(state)) < len(json.dumps(original.state_dict()))
    stored = {o.candidate.number: o.spec for o in original.history}

    def load(number: int) -> ArchSpec:
        return stored[number]

    history = [
        strategies.Observation(
            StoredCandidate(o.candidate.number, o.candidate.origin, o.spec.id, load),
            o.metrics,
            o.status,
        )
        for o in original.history
    ]
    resumed = create(name, TWO, seed=99)
    resumed.restore(state, history)
    for strategy in (original, resumed):
        strategy.tell([(c, toy_metrics(c.spec)) for c in pending])
    assert run(original, 12) == run(resumed, 12)
    try:
        create(name, TWO, seed=3).restore(state, history[:5])
    except ValueError as err:
        assert "taken after 18 results" in str(err), err
    else:
        raise AssertionError(f"{name}: restored a checkpoint with a short history")


def check_reaches_near_the_known_optimum(name: str) -> None:
    budget = 60  # of 600-odd points
    errors = sorted(toy_metrics(s)["error"] for s in _all())
    found = []
    for seed in range(3):
        strategy = create(name, ONE, seed=seed)
        run(strategy, budget)
        found.append(min(o.metrics["error"] for o in strategy.history if o.status == "ok"))
    # the median run ends among the best 5% of the space
    assert sorted(found)[1] <= errors[len(errors) // 20], found


def check_constraints_select_feasible_results(name: str) -> None:
    from strategies.ranking import best_first

    macs = sorted(spec_cost(s).macs for s in _all())
    bound = macs[len(macs) // 4]
    strategy = create(
        name, [Objective("params", MAXIMIZE)], constraints=[Constraint("macs", max=bound)]
    )
    run(strategy, 40)
    best = best_first(strategy, strategy.history, 1)[0]
    assert best.metrics["macs"] <= bound


def check_seeded_runs_repeat(name: str) -> None:
    assert run(create(name, TWO, seed=5), 15) == run(create(name, TWO, seed=5), 15)


def check_options_are_declared_with_types_and_ranges(name: str) -> None:
    """Each strategy declares every keyword option of its constructor (`option_types`), and
    the declaration accepts the defaults, so a config is checked before the run starts."""
    cls = strategies.STRATEGIES.get(name)
    assert cls.option_types is not None, f"{name} declares no option_types"
    fixed = {"self", "space", "objectives", "seed", "constraints", "initial"}
    keywords: set[str] = set()
    for klass in cls.__mro__:  # an adapter passes **options on to its base
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        keywords |= {p.name for p in params if p.kind is p.KEYWORD_ONLY} - fixed
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    assert set(cls.option_types) == keywords
    defaults = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is not None:
            for p in inspect.signature(init).parameters.values():
                if p.name in keywords and p.default is not p.empty:
                    defaults[p.name] = p.default
    check_options(defaults, cls.option_types, name)


CHECKS: tuple[Callable[[str], None], ...] = (
    check_candidates_are_new_points_of_the_space,
    check_failures_are_recorded_and_the_search_goes_on,
    check_resume_continues_exactly,
    check_resume_from_a_bounded_checkpoint_and_a_lazy_history,
    check_reaches_near_the_known_optimum,
    check_constraints_select_feasible_results,
    check_seeded_runs_repeat,
    check_options_are_declared_with_types_and_ranges,
)
