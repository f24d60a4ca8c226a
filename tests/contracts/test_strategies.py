"""Contract every registered strategy passes (`mixnas.testing.strategies`).

On a toy space with a known optimum (objectives computed from analytic costs): candidates are in
the space, never repeated, at most as many as asked; failures do not stop the search; constraints
are honoured by feasibility-first selection; a strategy resumed from its JSON state continues
exactly as the original; and the search gets close to the optimum within a modest budget.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

import strategies
from mixnas.testing.strategies import CHECKS, ONE, create, toy_space

NAMES = strategies.names()


def test_the_registry_has_the_strategies_the_docs_promise() -> None:
    assert {"random", "evolution", "nsga2", "local_search", "surrogate"} <= set(NAMES)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", NAMES)
def test_strategy_contract(name: str, check: Callable[[str], None]) -> None:
    check(name)


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
        strategies.create("annealing", toy_space(), ONE, seed=0)


def test_tell_rejects_unknown_candidates() -> None:
    a, b = create("random"), create("random", seed=1)
    (cand,) = b.ask(1)
    with pytest.raises(ValueError, match="was not asked"):
        a.tell([(cand, {"error": 1.0})])
    np.testing.assert_equal(len(a.history), 0)
