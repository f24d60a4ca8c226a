"""Contract every registered evaluator passes (`mixnas.testing.evaluators`): on a small spec it
returns an `ok` result whose metrics are finite and named as declared, the same seed gives the same
metrics, and a broken spec gives a `failed` result with the error text instead of an exception."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import evaluators
from mixnas.testing.evaluators import CHECKS, small_spec

NAMES = evaluators.names()


def test_registry_has_the_cost_evaluator() -> None:
    assert "cost" in NAMES


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", NAMES)
def test_evaluator_contract(name: str, check: Callable[[str], None]) -> None:
    check(name)


def test_non_finite_metrics_fail() -> None:
    class Broken(evaluators.Evaluator):
        name = "broken"

        def _evaluate(self, spec, context):  # type: ignore[no-untyped-def]
            return evaluators.EvalResult("ok", {"top1": float("nan")})

    result = Broken().evaluate(small_spec())
    assert result.status == "failed" and "top1" in result.error
