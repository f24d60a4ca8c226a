"""HorNet's recursive gated convolution g^n Conv (catalog family M17).

"HorNet: Efficient High-Order Spatial Interactions with Recursive Gated Convolutions". The mixer is
the ``gnconv`` module of the official code; HorNet's block (LayerNorm, gnconv, layer scale, then a
LayerNorm + ratio-4 MLP with layer scale) is the MetaFormer block with norm ``layernorm``, channel
mixer ``mlp`` and ``layer_scale``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    fft_macs,
    norm_cost,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.sharing import GRID, WIDTH, Sharing
from search_space.ops.token_mixers.spectral import rfft_grid


def gnconv_dims(dim: int, order: int) -> list[int]:
    """Channels of the n gating orders, smallest first: ``[d / 2^(n-1), ..., d / 2, d]``."""
    return [dim // 2**i for i in range(order)][::-1]


def _divisible(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    # the global variant splits the depthwise channels in two halves, so one more factor of 2
    order = params["order"] - 1 + (params["filter"] == "global")
    if ctx.dim % 2**order:
        return (
            f"order={params['order']} with filter={params['filter']!r} needs the width to be a "
            f"multiple of {2**order}, not {ctx.dim}"
        )
    return None


def global_local_filter_cost(grid: tuple[int, ...], channels: int, kernel: int) -> Cost:
    """HorNet's GlobalLocalFilter on ``channels``: LayerNorm, half through a depthwise conv (no
    bias), half through a GFNet global filter, channels interleaved, LayerNorm."""
    n, half = math.prod(grid), channels // 2
    transforms = 2 * fft_macs(n, half)  # a real forward and a real inverse FFT per channel
    spectral = Cost(
        params=2 * math.prod(rfft_grid(grid)) * half,
        macs=transforms,
        fft_macs=transforms,
        activations=n * half,
    )
    return (
        norm_cost("layernorm", n * channels, channels)
        + conv_cost(grid, half, half, kernel, groups=half, bias=False)
        + spectral
        + norm_cost("layernorm", n * channels, channels)
    )


def _gnconv_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    d, grid = ctx.dim, ctx.grid
    dims = gnconv_dims(d, params["order"])
    spread = sum(dims)  # channels of the depthwise conv: every order's gate
    if params["filter"] == "global":
        spatial = global_local_filter_cost(grid, spread, params["kernel"])
    else:
        spatial = conv_cost(grid, spread, spread, params["kernel"], groups=spread)
    cost = conv_cost(grid, d, 2 * d, 1) + spatial + conv_cost(grid, d, d, 1)
    for c_in, c_out in itertools.pairwise(dims):
        cost += conv_cost(grid, c_in, c_out, 1)
    return cost


def _sharing(params: Mapping[str, Any]) -> Sharing:
    """The depthwise variant packs the gates [p_0 | g_0 .. g_(n-1)] in widths proportional to
    1, 1, 2, .., 2^(n-1): each gate keeps its prefix. The global-local filter interleaves a
    depthwise and a spectral half channel by channel before the gates split, which no prefix
    keeps, and its spectral half depends on the grid: one weight set per width and grid."""
    if params["filter"] == "global":
        return Sharing(keyed_by=(GRID, WIDTH), note="filter global: interleaved, grid-bound")
    gates = tuple(2**i for i in range(params["order"]))
    return Sharing(
        elastic=("kernel",), chunks={"proj_in.": (0, (1, *gates)), "dwconv.": (0, gates)}
    )


register(
    OpDef(
        name="gnconv",
        sharing=_sharing,
        kind="token_mixer",
        module="search_space.nn.mixers.gnconv:GnConv",
        family="M17",
        layout=LAYOUT_GRID,
        complexity="O(N d^2 + N d k^2)",
        params=(
            ParamDef("order", int, 3, minimum=1, doc="interaction order n (HorNet: 2, 3, 4, 5)"),
            ParamDef("kernel", int, 7, minimum=1, doc="depthwise kernel (odd; HorNet-T 7x7)"),
            ParamDef("scale", float, 1.0 / 3.0, doc="multiplies the depthwise output (HorNet 1/3)"),
            ParamDef(
                "filter",
                str,
                "dwconv",
                choices=("dwconv", "global"),
                doc="depthwise conv, or HorNet-GF's global-local filter (grid-bound weights)",
            ),
        ),
        rules=(odd("kernel"), _divisible),
        cost=_gnconv_cost,
        examples=(
            {"order": 1},
            {"order": 5, "kernel": 3},
            {"order": 2, "filter": "global", "kernel": 3},
        ),
        doc="recursive gated conv: 1x1 to 2d, depthwise gates, p_{k+1} = pw_k(p_k) * g_k (HorNet)",
    )
)
