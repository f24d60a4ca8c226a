"""Contract every registered evaluator passes: on a small spec it returns an `ok` result whose
metrics are finite and named as declared, the same seed gives the same metrics, and a broken spec
gives a `failed` result with the error text instead of an exception."""

from __future__ import annotations

import math

import pytest

import evaluators
from evaluators import EvalContext
from search_space import ArchSpec, load_space

# small budgets so that every evaluator runs in seconds
CONTEXT = EvalContext(seed=0, budget={"steps": 5})
NAMES = evaluators.names()


def _spec() -> ArchSpec:
    data = load_space("hybrid").sample(0).to_dict()
    data["input"]["resolution"] = [16, 16]
    return ArchSpec.from_dict(data)


def test_registry_has_the_cost_evaluator() -> None:
    assert "cost" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_evaluates_a_spec(name: str) -> None:
    evaluator = evaluators.create(name)
    result = evaluator.evaluate(_spec(), CONTEXT)
    assert result.status == "ok", result.error
    assert result.metrics and all(math.isfinite(v) for v in result.metrics.values())
    assert set(evaluator.metrics) <= set(result.metrics)
    assert result.timings["total"] >= 0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_metrics(name: str) -> None:
    evaluator = evaluators.create(name)
    spec = _spec()
    first, again = evaluator.evaluate(spec, CONTEXT), evaluator.evaluate(spec, CONTEXT)
    # timings (and what is derived from them: spread, noise flags) differ between two runs
    volatile = {
        k for k in first.metrics if "seconds" in k or k.endswith("_ms") or k.startswith("latency")
    }
    assert {k: v for k, v in first.metrics.items() if k not in volatile} == {
        k: v for k, v in again.metrics.items() if k not in volatile
    }


@pytest.mark.parametrize("name", NAMES)
def test_a_broken_spec_is_a_failed_result(name: str) -> None:
    data = _spec().to_dict()
    data["stages"][0]["blocks"][0]["token_mixer"] = {"name": "no_such_mixer", "params": {}}
    result = evaluators.create(name).evaluate(ArchSpec.from_dict(data), CONTEXT)
    assert result.status == "failed"
    assert "no_such_mixer" in result.error


def test_non_finite_metrics_fail() -> None:
    class Broken(evaluators.Evaluator):
        name = "broken"

        def _evaluate(self, spec, context):  # type: ignore[no-untyped-def]
            return evaluators.EvalResult("ok", {"top1": float("nan")})

    result = Broken().evaluate(_spec())
    assert result.status == "failed" and "top1" in result.error


@pytest.mark.parametrize("name", NAMES)
def test_declared_options_accept_the_defaults(name: str) -> None:
    """An evaluator that declares `option_types` declares every constructor keyword (or every
    setting, for the trainers) and accepts its own defaults."""
    import inspect

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
