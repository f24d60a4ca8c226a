"""Causality contract over the mixer registries (`mixnas.testing.ops`).

Every token or channel mixer that declares it can be causal, made causal, on a 1-D sequence with
and without a class token: changing the inputs after position t never changes its outputs at
positions <= t (several t, random inputs, eval mode, tolerance 1e-5). Every token mixer that is
not causal (declares nothing, or has its causal parameter off) is refused before the LM head with
one line naming it.
"""

from __future__ import annotations

from typing import Any

import pytest

from mixnas.testing.ops import causal_cases, check_causal, check_causal_refused, refusal_cases
from search_space.ops import TOKEN_MIXERS, OpContext, OpDef

# the token mixers mixnas ships as causal-capable; a change to this set is a decision, not drift
CAUSAL_TOKEN_MIXERS = {
    "attention",
    "dwconv",
    "gated_cnn",
    "identity",
    "linear_attention",
    "lka",
    "none",
    "pooling",
    "selective_ssm",
    "sepconv",
    "shift",
}


@pytest.mark.parametrize(("op", "params", "ctx"), causal_cases())
def test_causal_mixer_never_reads_the_future(
    op: OpDef, params: dict[str, Any], ctx: OpContext
) -> None:
    check_causal(op, params, ctx)


@pytest.mark.parametrize(("op", "params"), refusal_cases())
def test_non_causal_mixer_is_refused_in_one_line(op: OpDef, params: dict[str, Any]) -> None:
    check_causal_refused(op, params)


def test_the_causal_token_mixers_are_the_declared_ones() -> None:
    declared = {name for name in TOKEN_MIXERS.names() if TOKEN_MIXERS.get(name).causal}
    assert declared == CAUSAL_TOKEN_MIXERS
