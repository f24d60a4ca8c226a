"""KAT's group-rational KAN channel mixer, GR-KAN (catalog family M22, section (c)).

"Kolmogorov-Arnold Transformer": the MLP ``fc2(act(fc1(x)))`` becomes
``fc2(R2(fc1(R1(x))))`` where R1 and R2 are group-rational activations: channels split into
``groups`` groups; each group applies ``P(x) / (1 + |b_1 x| + ... + |b_n x^n|)`` with a numerator
P of degree ``num_order`` shared by all groups and a denominator per group (the official
``KAT_Group``). R1 starts as the identity, R2 as a rational fit of ``init``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_TOKENS,
    PER_TOKEN,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    linear_cost,
)
from search_space.ops.channel_mixers import hidden_width
from search_space.ops.registries import register
from search_space.ops.sharing import WIDTH, Sharing

RATIONAL_INITS = ("gelu", "swish", "identity")


def rational_params(groups: int, num_order: int, den_order: int) -> int:
    """Parameters of one group-rational activation: shared numerator, per-group denominator."""
    return (num_order + 1) + groups * den_order


def _groups_divide(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    groups, hidden = params["groups"], hidden_width(ctx.dim, params["ratio"])
    if ctx.dim % groups or hidden % groups:
        return f"groups={groups} must divide the width {ctx.dim} and the hidden width {hidden}"
    return None


def _kan_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    h = hidden_width(ctx.dim, params["ratio"])
    rationals = 2 * rational_params(params["groups"], params["num_order"], params["den_order"])
    # The rational activations are elementwise (free in fvcore's conventions, like GELU); Horner's
    # rule would add T (d + h) (m + n) MACs, about 1% of KAT-S.
    return (
        linear_cost(ctx.tokens, ctx.dim, h, params["bias"])
        + linear_cost(ctx.tokens, h, ctx.dim, params["bias"])
        + Cost(params=rationals, activations=ctx.tokens * (ctx.dim + h))
    )


register(
    OpDef(
        name="kan",
        sharing=Sharing(
            elastic=("ratio",),
            chunks={"fc1.": (0, "groups"), "fc2.": (1, "groups")},
            keyed_by=(WIDTH,),
            note="rational activations per channel group: the input's groups follow the width",
        ),
        kind="channel_mixer",
        module="search_space.nn.kan:GroupRationalKan",
        causal=PER_TOKEN,
        layout=LAYOUT_TOKENS,
        complexity="O(N d^2 + N d (m + n))",
        family="M22",
        params=(
            ParamDef("ratio", float, 4.0, minimum=0.0625, doc="hidden width / width"),
            ParamDef("groups", int, 8, minimum=1, doc="rational groups (KAT: 8)"),
            ParamDef("num_order", int, 5, minimum=1, doc="numerator degree m (KAT: 5)"),
            ParamDef("den_order", int, 4, minimum=1, doc="denominator degree n (KAT: 4)"),
            ParamDef(
                "init", str, "gelu", choices=RATIONAL_INITS, doc="function the 2nd rational fits"
            ),
            ParamDef("bias", bool, True),
        ),
        rules=(_groups_divide,),
        cost=_kan_cost,
        examples=({"groups": 4, "num_order": 3, "den_order": 2, "init": "swish", "ratio": 2.0},),
        doc="GR-KAN: group-rational activation, fc1, group-rational activation, fc2 (KAT)",
    )
)
