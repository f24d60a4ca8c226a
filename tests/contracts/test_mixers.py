"""Contract every registered token mixer and channel mixer passes (`mixnas.testing.ops`).

For each op, each example parameter set and each context (2-D grid, odd 2-D grid with a class
token, 1-D sequence): the module builds with explicit keywords, keeps the token shape, runs forward
and backward without NaN, has exactly the analytic parameter count, and fvcore's counted MACs (with
mixnas's handlers) agree with the analytic formula within 2%.
"""

from __future__ import annotations

import pytest

from mixnas.testing.ops import check_documented, check_mixer, mixer_cases, mixer_ops
from search_space.ops import OpContext, OpDef


@pytest.mark.parametrize(("op", "example", "ctx"), mixer_cases())
def test_mixer_contract(op: OpDef, example: dict, ctx: OpContext) -> None:
    check_mixer(op, example, ctx)


@pytest.mark.parametrize("op", mixer_ops(), ids=lambda op: op.name)
def test_every_mixer_documents_itself(op: OpDef) -> None:
    check_documented(op)
