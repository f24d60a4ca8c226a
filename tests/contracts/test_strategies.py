"""Contract every registered strategy passes.

On a toy space with a known optimum (objectives computed from analytic costs): candidates are in
the space, never repeated, at most as many as asked; failures do not stop the search; constraints
are honoured by feasibility-first selection; a strategy resumed from its JSON state continues
exactly as the original; and the search gets close to the optimum within a modest budget.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import strategies
from search_space import ArchSpec, SearchSpace, spec_cost
from search_space.declare.schema import Constraint
from strategies import Objective
from strategies.base import StoredCandidate

TOY = {
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
SPACE = SearchSpace.from_dict(TOY, source="toy")
ALL = list(SPACE.enumerate())
TARGET = sorted(spec_cost(s).params for s in ALL)[len(ALL) // 3]
ONE = [Objective("error", "minimize")]
TWO = [Objective("params", "maximize"), Objective("macs", "minimize")]


def _metrics(spec: ArchSpec) -> dict[str, float]:
    cost = spec_cost(spec)
    return {"error": abs(cost.params - TARGET) / TARGET, "params": cost.params, "macs": cost.macs}


def _create(name: str, objectives=ONE, seed: int = 0, **kwargs) -> strategies.Strategy:
    return strategies.create(name, SPACE, objectives, seed=seed, **kwargs)


def _run(strategy: strategies.Strategy, steps: int, batch: int = 1) -> list[str]:
    ids = []
    for _ in range(steps):
        for cand in strategy.ask(batch):
            ids.append(cand.spec.id)
            strategy.tell([(cand, _metrics(cand.spec))])
    return ids


NAMES = strategies.names()


def test_the_registry_has_the_strategies_the_docs_promise() -> None:
    assert {"random", "evolution", "nsga2", "local_search", "surrogate"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_candidates_are_new_points_of_the_space(name: str) -> None:
    strategy = _create(name, TWO)
    seen: set[str] = set()
    for batch in (1, 3, 5, 1, 4):
        cands = strategy.ask(batch)
        assert 0 < len(cands) <= batch
        for c in cands:
            assert SPACE.contains(c.spec, check_constraints=False)
            assert c.spec.id not in seen
            seen.add(c.spec.id)
        strategy.tell([(c, _metrics(c.spec)) for c in cands])
    assert len(strategy.history) == len(seen)


@pytest.mark.parametrize("name", NAMES)
def test_failures_are_recorded_and_the_search_goes_on(name: str) -> None:
    strategy = _create(name, TWO)
    for i in range(25):
        (cand,) = strategy.ask(1)
        metrics = (
            None
            if i % 3 == 0
            else ({"params": math.nan, "macs": 1.0} if i % 3 == 1 else _metrics(cand.spec))
        )
        strategy.tell([(cand, metrics)])
    statuses = [o.status for o in strategy.history]
    assert statuses.count("failed") >= 16 and statuses.count("ok") >= 8


@pytest.mark.parametrize("name", NAMES)
def test_resume_continues_exactly(name: str) -> None:
    original = _create(name, TWO, seed=3)
    _run(original, 18)
    pending = original.ask(2)  # resume with evaluations still in flight
    state = json.loads(json.dumps(original.state_dict()))
    resumed = _create(name, TWO, seed=99)
    resumed.load_state_dict(state)
    for strategy in (original, resumed):
        strategy.tell([(c, _metrics(c.spec)) for c in pending])
    assert _run(original, 12) == _run(resumed, 12)


@pytest.mark.parametrize("name", NAMES)
def test_resume_from_a_bounded_checkpoint_and_a_lazy_history(name: str) -> None:
    """What a run driver does: a checkpoint without the history, the history handed back as
    `StoredCandidate`s whose specs load on demand; the strategy continues exactly."""
    original = _create(name, TWO, seed=3)
    _run(original, 18)
    pending = original.ask(2)
    state = json.loads(json.dumps(original.checkpoint_state()))
    assert "history" not in state and state["told"] == 18
    assert len(json.dumps(state)) < len(json.dumps(original.state_dict()))
    stored = {o.candidate.number: o.spec for o in original.history}
    loads: list[int] = []

    def load(number: int) -> ArchSpec:
        loads.append(number)
        return stored[number]

    history = [
        strategies.Observation(
            StoredCandidate(o.candidate.number, o.candidate.origin, o.spec.id, load),
            o.metrics,
            o.status,
        )
        for o in original.history
    ]
    resumed = _create(name, TWO, seed=99)
    resumed.restore(state, history)
    for strategy in (original, resumed):
        strategy.tell([(c, _metrics(c.spec)) for c in pending])
    assert _run(original, 12) == _run(resumed, 12)
    with pytest.raises(ValueError, match="taken after 18 results"):
        _create(name, TWO, seed=3).restore(state, history[:5])


@pytest.mark.parametrize("name", NAMES)
def test_reaches_near_the_known_optimum(name: str) -> None:
    budget = 60  # of 600-odd points
    errors = sorted(_metrics(s)["error"] for s in ALL)
    found = []
    for seed in range(3):
        strategy = _create(name, ONE, seed=seed)
        _run(strategy, budget)
        found.append(min(o.metrics["error"] for o in strategy.history if o.status == "ok"))
    # the median run ends among the best 5% of the space
    assert sorted(found)[1] <= errors[len(errors) // 20]


@pytest.mark.parametrize("name", NAMES)
def test_constraints_select_feasible_results(name: str) -> None:
    macs = sorted(spec_cost(s).macs for s in ALL)
    bound = macs[len(macs) // 4]
    strategy = _create(
        name, [Objective("params", "maximize")], constraints=[Constraint("macs", max=bound)]
    )
    _run(strategy, 40)
    from strategies.ranking import best_first

    best = best_first(strategy, strategy.history, 1)[0]
    assert best.metrics["macs"] <= bound


def test_seeded_runs_repeat() -> None:
    for name in NAMES:
        assert _run(_create(name, TWO, seed=5), 15) == _run(_create(name, TWO, seed=5), 15)


def test_native_strategies_do_not_import_torch() -> None:
    code = (
        "import sys, strategies\n"
        "from search_space import load_space\n"
        "for n in ['random', 'evolution', 'nsga2', 'local_search', 'surrogate']:\n"
        "    s = strategies.create(n, load_space('hybrid'), ['top1'], seed=0); s.ask(2)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"known: .*evolution"):
        strategies.create("annealing", SPACE, ONE, seed=0)


def test_tell_rejects_unknown_candidates() -> None:
    a, b = _create("random"), _create("random", seed=1)
    (cand,) = b.ask(1)
    with pytest.raises(ValueError, match="was not asked"):
        a.tell([(cand, {"error": 1.0})])
    np.testing.assert_equal(len(a.history), 0)


@pytest.mark.parametrize("name", NAMES)
def test_options_are_declared_with_types_and_ranges(name: str) -> None:
    """Each strategy declares every keyword option of its constructor (`option_types`), and
    the declaration accepts the defaults, so a config is checked before the run starts."""
    import inspect

    from search_space.option_types import check_options

    cls = strategies.STRATEGIES.get(name)
    assert cls.option_types is not None, f"{name} declares no option_types"
    fixed = {"self", "space", "objectives", "seed", "constraints", "initial"}
    keywords = set()
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
