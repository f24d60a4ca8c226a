"""The contract of an evaluator, for the built-ins and for plug-ins.

On a small spec (a hybrid-space sample at 16x16, budgets of a few steps): ``evaluate`` returns an
``ok`` result whose metrics are finite and include every declared one; the same seed gives the same
metrics (timings and what derives from them aside); a spec naming an unknown mixer gives a
``failed`` result with the error text instead of an exception; declared options
(`Evaluator.option_types`) cover the constructor's keywords and accept its defaults.

Use from a plug-in's tests::

    import pytest
    from mixnas.testing.evaluators import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_my_evaluator(check):
        check("my_evaluator")
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import pytest

import evaluators
from evaluators import EvalContext
from search_space import ArchSpec, load_space

# small budgets so that every evaluator runs in seconds
CONTEXT = EvalContext(seed=0, budget={"steps": 5})


def small_spec() -> ArchSpec:
    data = load_space("hybrid").sample(0).to_dict()
    data["input"]["resolution"] = [16, 16]
    return ArchSpec.from_dict(data)


def spec_for(name: str) -> ArchSpec:
    """The spec the suite evaluates: `small_spec`, or the evaluator class's own
    ``example_spec()`` when it prices only some ops (a cost model of one setting: ``mpc_cost``);
    such an evaluator must still fail (not raise) on a spec outside its domain."""
    example = getattr(evaluators.EVALUATORS.get(name), "example_spec", None)
    return example() if example is not None else small_spec()


def check_evaluates_a_spec(name: str) -> None:
    evaluator = evaluators.create(name)
    result = evaluator.evaluate(spec_for(name), CONTEXT)
    assert result.status == "ok", result.error
    assert result.metrics and all(math.isfinite(v) for v in result.metrics.values())
    assert set(evaluator.metrics) <= set(result.metrics), "a declared metric is missing"
    assert result.timings["total"] >= 0


def check_same_seed_same_metrics(name: str) -> None:
    evaluator = evaluators.create(name)
    spec = spec_for(name)
    first, again = evaluator.evaluate(spec, CONTEXT), evaluator.evaluate(spec, CONTEXT)
    # timings (and what is derived from them: spread, noise flags) differ between two runs
    volatile = {
        k for k in first.metrics if "seconds" in k or k.endswith("_ms") or k.startswith("latency")
    }
    assert {k: v for k, v in first.metrics.items() if k not in volatile} == {
        k: v for k, v in again.metrics.items() if k not in volatile
    }


def check_a_broken_spec_is_a_failed_result(name: str) -> None:
    data = spec_for(name).to_dict()
    data["stages"][0]["blocks"][0]["token_mixer"] = {"name": "no_such_mixer", "params": {}}
    result = evaluators.create(name).evaluate(ArchSpec.from_dict(data), CONTEXT)
    assert result.status == "failed"
    assert "no_such_mixer" in result.error


def check_declared_options_accept_the_defaults(name: str) -> None:
    """An evaluator that declares `option_types` declares every constructor keyword (or every
    setting, for the trainers) and accepts its own defaults."""
    from search_space.option_types import check_options

    cls = evaluators.EVALUATORS.get(name)
    if cls.option_types is None:
        pytest.skip(f"{name} checks its options in its constructor")
    defaults = getattr(cls, "defaults", None)
    if defaults is None:
        params = [
            p
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        defaults = {p.name: p.default for p in params}
    assert set(cls.option_types) == set(defaults)
    check_options(defaults, cls.option_types, name)


CHECKS: tuple[Callable[[str], None], ...] = (
    check_evaluates_a_spec,
    check_same_seed_same_metrics,
    check_a_broken_spec_is_a_failed_result,
    check_declared_options_accept_the_defaults,
)
