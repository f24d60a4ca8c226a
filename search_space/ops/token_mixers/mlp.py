"""Token-mixing MLP (catalog family M14): MLP-Mixer's cross-token feed-forward."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import LAYOUT_SEQUENCE, Cost, OpContext, OpDef, ParamDef, linear_cost
from search_space.ops.channel_mixers import hidden_width
from search_space.ops.registries import register
from search_space.ops.sharing import GRID, Sharing


def _token_mlp_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    # two linears over the N grid tokens, applied to each of the d channels; weights are N-bound
    n, h = ctx.n, hidden_width(ctx.n, params["ratio"])
    return linear_cost(ctx.dim, n, h) + linear_cost(ctx.dim, h, n)


register(
    OpDef(
        name="token_mlp",
        sharing=Sharing(
            elastic=("ratio",), keyed_by=(GRID,), note="its weights act on the tokens of the grid"
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.mlp:TokenMlp",
        family="M14",
        layout=LAYOUT_SEQUENCE,
        complexity="O(N^2 d)",
        params=(
            ParamDef(
                "ratio",
                float,
                0.5,
                minimum=0.0625,
                doc="hidden tokens / grid tokens; weights are tied to the resolution",
            ),
        ),
        cost=_token_mlp_cost,
        examples=({"ratio": 2.0},),
        doc="MLP over the grid tokens shared by all channels, N -> ratio*N -> N (MLP-Mixer)",
    )
)
