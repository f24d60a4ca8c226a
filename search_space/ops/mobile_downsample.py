"""Downsamplers built from mobile convolution blocks.

``mbconv``: the strided MBConv that opens every MaxViT stage ("MaxViT: Multi-Axis Vision
Transformer"; timm ``maxxvit.MbConvBlock`` with stride 2): ``shortcut(x) + body(pre_norm(x))``,
where the shortcut is 2x2 average pooling followed, when the width changes, by a 1x1 conv with
bias, and the body is the ``mbconv`` token mixer's inverted residual with a stride-2 depthwise
conv. ``ctx.dim`` is the previous width, ``ctx.out_dim`` the stage's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import Cost, OpContext, OpDef, conv_cost, conv_out, norm_cost
from search_space.ops.downsample import _prefix_cost
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing
from search_space.ops.token_mixers.mbconv import MBCONV_PARAMS, mbconv_body_cost


def _mbconv_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    k = params["kernel"]
    return tuple(conv_out(g, k, 2, k // 2) for g in ctx.grid)


def _mbconv_down_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid = _mbconv_grid(ctx, params)
    shortcut = conv_cost(grid, ctx.dim, ctx.out_dim, 1) if ctx.dim != ctx.out_dim else Cost()
    pre = norm_cost(params["norm"], ctx.n * ctx.dim, ctx.dim)
    body = mbconv_body_cost(ctx.grid, grid, ctx.dim, ctx.out_dim, params)
    return (
        shortcut + pre + body + Cost(activations=math.prod(grid) * ctx.out_dim) + _prefix_cost(ctx)
    )


def _odd_kernel(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    k = params["kernel"]
    return None if k % 2 else f"kernel={k} must be odd (stride-2 'same' depthwise conv)"


register(
    OpDef(
        name="mbconv",
        sharing=Sharing(elastic=("expand", "kernel", "se_ratio")),
        kind="downsample",
        module="search_space.nn.mobile_downsample:MBConvDownsample",
        params=MBCONV_PARAMS,
        cost=_mbconv_down_cost,
        out_grid=_mbconv_grid,
        rules=(_odd_kernel,),
        doc="strided MBConv with pooled shortcut (MaxViT stage entry); norm also used as pre-norm",
    )
)
