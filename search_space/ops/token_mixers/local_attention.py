"""Sparse local and structured attention mixers: neighbourhood attention (M03), grid attention
(M04), bi-level routing attention (M06) and HiLo attention (M09).

Each mixer's geometry (how it cuts the grid, how it clips to small grids) is a torch-free function
here, shared by the cost formula and the module so that the two cannot drift apart.
"""

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
    divides,
    linear_cost,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.token_mixers.attention import HEAD_DIM, QKV_BIAS


def _attend(queries: int, keys: int, d: int, heads: int) -> Cost:
    """QK^T and AV for ``queries`` queries each attending ``keys`` keys, width d."""
    macs = 2 * queries * keys * d
    return Cost(macs=macs, dynamic_macs=macs, activations=heads * queries * keys + queries * d)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# -- neighbourhood attention (M03) -----------------------------------------------------------------


def neighborhood_geometry(
    grid: tuple[int, ...], kernel: int, dilation: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Effective kernel and dilation per axis of (dilated) neighbourhood attention on ``grid``.

    NATTEN needs ``kernel * dilation <= axis`` (each of the ``dilation`` interleaved sub-axes must
    hold a whole neighbourhood). On smaller axes mixnas clips instead of padding: the kernel to
    the axis (a kernel spanning the axis is global attention along it), then the dilation to the
    largest value that still fits, ``axis // kernel`` (at least 1). DiNAT's published dilations
    already satisfy NATTEN's condition at 224 px, where this rule changes nothing.
    """
    kernels = tuple(min(kernel, g) for g in grid)
    dilations = tuple(max(1, min(dilation, g // k)) for g, k in zip(grid, kernels, strict=True))
    return kernels, dilations


def _neighborhood_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d = ctx.n, ctx.dim
    heads = d // params["head_dim"]
    kernels, _ = neighborhood_geometry(ctx.grid, params["kernel"], params["dilation"])
    table = (2 * params["kernel"] - 1) ** len(ctx.grid) * heads if params["rel_pos_bias"] else 0
    cost = linear_cost(n, d, 3 * d, bias=params["qkv_bias"])
    cost += _attend(n, math.prod(kernels), d, heads) + Cost(params=table)
    return cost + linear_cost(n, d, d)


register(
    OpDef(
        name="neighborhood_attention",
        kind="token_mixer",
        module="search_space.nn.mixers.neighborhood:NeighborhoodAttention",
        family="M03",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N k^r d + N d^2)",
        params=(
            ParamDef(
                "kernel",
                int,
                7,
                minimum=1,
                doc="neighbourhood side k (odd); clipped to the grid on each axis",
            ),
            ParamDef(
                "dilation",
                int,
                1,
                minimum=1,
                doc="DiNA dilation; clipped per axis to axis // kernel (NATTEN's bound)",
            ),
            HEAD_DIM,
            QKV_BIAS,
            ParamDef(
                "rel_pos_bias",
                bool,
                True,
                doc="NATTEN's relative position bias, a heads x (2k-1)^r table",
            ),
        ),
        rules=(divides("head_dim"), odd("kernel")),
        cost=_neighborhood_cost,
        doc="NAT / DiNAT (dilated) neighbourhood attention: each token attends its k^r nearest",
        examples=(
            {"kernel": 3, "dilation": 2},
            {"kernel": 5, "dilation": 4, "rel_pos_bias": False},
            {"kernel": 9},
        ),
    )
)
