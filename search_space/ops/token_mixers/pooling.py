"""Pooling token mixer (catalog family M11): PoolFormer."""

from __future__ import annotations

from search_space.ops.base import LAYOUT_GRID, Cost, OpDef, ParamDef
from search_space.ops.causal import CAUSAL, causal_flag, causal_needs_sequence
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing

register(
    OpDef(
        name="pooling",
        sharing=Sharing(elastic=("pool_size",)),
        kind="token_mixer",
        module="search_space.nn.mixers.pooling:Pooling",
        family="M11",
        layout=LAYOUT_GRID,
        complexity="O(N d k^2)",
        params=(
            ParamDef("pool_size", int, 3, minimum=1, doc="average-pooling window (odd)"),
            CAUSAL,
        ),
        rules=(odd("pool_size"), causal_needs_sequence),
        causal=causal_flag("average of the last k positions t - k + 1 .. t (fewer at the start)"),
        # average pooling and the subtraction are elementwise-class ops: free in fvcore conventions
        cost=lambda ctx, params: Cost(activations=ctx.n * ctx.dim),
        examples=({"pool_size": 5}, {"pool_size": 5, "causal": True}),
        doc="average pooling minus the input (PoolFormer)",
    )
)
