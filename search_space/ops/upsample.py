"""Upsamplers: downsampler-registry entries that enlarge the grid, for U-Net decoders.

Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation" (2015):
2x2 transposed convolution with stride 2 ("up-convolution"). Prefix (class) tokens pass through
a linear projection when the width changes, as in `search_space.ops.downsample`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import Cost, OpContext, OpDef, ParamDef, linear_cost
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing


def _up_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(g * params["factor"] for g in ctx.grid)


def _up_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    # a transposed conv with kernel = stride = f: every input cell writes f^r outputs, each a
    # C_in -> C_out product (fvcore counts C_in * C_out * k^r per input cell)
    k = params["factor"] ** len(ctx.grid)
    weights = ctx.dim * ctx.out_dim * k
    cost = Cost(
        params=weights + ctx.out_dim,
        macs=ctx.n * weights,
        activations=math.prod(_up_grid(ctx, params)) * ctx.out_dim,
    )
    if ctx.prefix and ctx.dim != ctx.out_dim:
        cost += linear_cost(ctx.prefix, ctx.dim, ctx.out_dim)
    return cost


register(
    OpDef(
        name="upsample",
        sharing=Sharing(),
        kind="downsample",
        module="search_space.nn.upsample:TransposedConvUpsample",
        params=(ParamDef("factor", int, 2, minimum=2, doc="grid growth per axis"),),
        cost=_up_cost,
        out_grid=_up_grid,
        doc="transposed convolution, kernel = stride = factor (U-Net up-convolution)",
    )
)
