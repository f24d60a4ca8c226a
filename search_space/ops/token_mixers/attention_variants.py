"""Attention variants with their own projections or normalisation: focused linear attention
(M07), outlook attention (M21), convolutional-projection attention (M01) and channel
(transposed) attention (M23)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID_LAST,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    divides,
    linear_cost,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.token_mixers.attention import HEAD_DIM, QKV_BIAS, window_geometry

# -- focused linear attention (M07) ----------------------------------------------------------------


def _focused_linear_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d, hd, k = ctx.n, ctx.dim, params["head_dim"], params["kernel"]
    geo = window_geometry(ctx.grid, params["window"], shift=False)
    n_pad = math.prod(geo.padded)
    cost = linear_cost(n, d, 3 * d, bias=params["qkv_bias"])
    # per head and window: K^T V and Q (K^T V) (T hd^2 each), the normaliser Q . sum(K) (T hd)
    mixing = 2 * n_pad * d * hd + n_pad * d
    cost += Cost(macs=mixing, dynamic_macs=mixing, activations=geo.count * d * hd + 2 * n_pad * d)
    # rank restoration: one head_dim-channel depthwise conv shared by the heads, on each window
    dwc = conv_cost(geo.windows, hd, hd, k, groups=hd)
    cost += Cost(params=dwc.params, macs=dwc.macs * geo.count * (d // hd), activations=n_pad * d)
    # softplus'd per-channel scale and a learned positional encoding added to the window's keys
    cost += Cost(params=d + geo.tokens * d)
    return cost + linear_cost(n, d, d)


register(
    OpDef(
        name="focused_linear_attention",
        kind="token_mixer",
        module="search_space.nn.mixers.focused_linear:FocusedLinearAttention",
        family="M07",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N d^2 + N d k^r)",
        params=(
            ParamDef(
                "window",
                int,
                56,
                minimum=1,
                doc="window side, clipped to the grid (FLatten-Swin-T: 56, the whole map)",
            ),
            HEAD_DIM,
            QKV_BIAS,
            ParamDef(
                "focusing_factor",
                float,
                3.0,
                minimum=1.0,
                doc="p of the focusing map x -> ||x|| x^p / ||x^p||",
            ),
            ParamDef("kernel", int, 5, minimum=1, doc="depthwise conv on V (rank restoration)"),
        ),
        rules=(divides("head_dim"), odd("kernel")),
        cost=_focused_linear_cost,
        doc="FLatten focused linear attention: focused ReLU features, (K^T V) first, dwconv on V",
        examples=(
            {"window": 4},
            {"window": 3, "focusing_factor": 2.0, "kernel": 3, "qkv_bias": False},
            {"window": 7, "head_dim": 16},
        ),
    )
)


# -- outlook attention (M21) -----------------------------------------------------------------------


def outlook_grid(grid: tuple[int, ...], stride: int) -> tuple[int, ...]:
    """The grid of outlook centres: ``ceil(grid / stride)`` per axis (VOLO's pooled grid)."""
    return tuple(-(-g // stride) for g in grid)


def _outlook_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d = ctx.n, ctx.dim
    heads = d // params["head_dim"]
    window = params["kernel"] ** len(ctx.grid)
    m = math.prod(outlook_grid(ctx.grid, params["stride"]))
    cost = linear_cost(n, d, d, bias=params["qkv_bias"])
    # every centre predicts a (K x K) attention per head from its (pooled) feature
    cost += linear_cost(m, d, window * window * heads)
    # each centre's K outputs are weighted sums of its K unfolded values: M K^2 d
    weighted = m * window * window * d
    cost += Cost(macs=weighted, dynamic_macs=weighted, activations=m * window * d)
    return cost + linear_cost(n, d, d)


register(
    OpDef(
        name="outlook_attention",
        kind="token_mixer",
        module="search_space.nn.mixers.outlook:OutlookAttention",
        family="M21",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N K^(2r) h d / s^r + N d^2)",
        params=(
            ParamDef("kernel", int, 3, minimum=1, doc="outlook window side K (odd)"),
            ParamDef(
                "stride",
                int,
                2,
                minimum=1,
                doc="distance between window centres; attention from s-pooled features",
            ),
            HEAD_DIM,
            ParamDef("qkv_bias", bool, False, doc="bias of the value projection"),
        ),
        rules=(divides("head_dim"), odd("kernel")),
        cost=_outlook_cost,
        doc="VOLO outlook attention: K^r x K^r local weights predicted linearly from each centre",
        examples=(
            {"stride": 1},
            {"kernel": 5, "stride": 3, "qkv_bias": True},
            {"kernel": 1, "stride": 1, "head_dim": 16},
        ),
    )
)
