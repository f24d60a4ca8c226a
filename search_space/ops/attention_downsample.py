"""LeViT's shrink attention as a downsampler (catalog macro MA3: attention-based downsampling).

"LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference": between stages, queries
come from the grid subsampled by 2 and keys/values from the full grid, so attention itself halves
the resolution and changes the width (timm ``levit.AttentionDownsample``). Keys and queries have
``key_dim`` channels per head, values ``attn_ratio * key_dim``; every projection is a linear
without bias followed by batch norm; a learned bias per head and absolute query-key offset; a
hard-swish before the output projection. No shortcut: LeViT follows it with a residual MLP, which
is an ordinary block of the next stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import Cost, OpContext, OpDef, ParamDef, linear_cost, norm_cost
from search_space.ops.downsample import _prefix_cost
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import GRID, Sharing


def subsample_heads(ctx: OpContext, params: Mapping[str, Any]) -> int:
    """Heads: ``params['heads']``, or LeViT's ``in_dim // key_dim`` when it is 0."""
    return int(params["heads"]) or ctx.dim // params["key_dim"]


def _strided_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple((g - 1) // 2 + 1 for g in ctx.grid)


def _has_heads(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if subsample_heads(ctx, params) < 1:
        return f"heads=0 takes width // key_dim heads, but key_dim={params['key_dim']} > {ctx.dim}"
    if int(params["attn_ratio"] * params["key_dim"]) < 1:
        return f"attn_ratio={params['attn_ratio']} leaves no value channels"
    return None


def _linear_bn(tokens: int, d_in: int, d_out: int) -> Cost:
    return linear_cost(tokens, d_in, d_out, bias=False) + norm_cost(
        "batchnorm", tokens * d_out, d_out
    )


def _subsample_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d = ctx.n, ctx.dim
    n_out = math.prod(_strided_grid(ctx, params))
    heads, kd = subsample_heads(ctx, params), params["key_dim"]
    vd = int(params["attn_ratio"] * kd)
    scores = n_out * n * heads * (kd + vd)
    return (
        _linear_bn(n, d, heads * (kd + vd))  # keys and values on the full grid
        + _linear_bn(n_out, d, heads * kd)  # queries on the strided grid
        + Cost(params=heads * n, macs=scores, dynamic_macs=scores, activations=heads * n_out * n)
        + _linear_bn(n_out, heads * vd, ctx.out_dim)
        + _prefix_cost(ctx)
    )


register(
    OpDef(
        name="attention_subsample",
        sharing=Sharing(
            elastic=("heads",),
            keyed_by=(GRID,),
            note="[k | v] packed per head (fewer heads: a prefix); a bias per grid offset",
        ),
        kind="downsample",
        module="search_space.nn.attention_downsample:AttentionSubsample",
        params=(
            ParamDef("key_dim", int, 16, minimum=1, doc="query/key channels per head"),
            ParamDef("heads", int, 0, minimum=0, doc="heads; 0 means width // key_dim (LeViT)"),
            ParamDef("attn_ratio", float, 4.0, minimum=0.0, doc="value channels / key_dim"),
            ParamDef("act", str, "hardswish", choices=ACTIVATIONS, doc="before the projection"),
        ),
        rules=(_has_heads,),
        cost=_subsample_cost,
        out_grid=_strided_grid,
        doc="LeViT shrink attention: queries on the stride-2 grid, keys/values on the full grid",
    )
)
