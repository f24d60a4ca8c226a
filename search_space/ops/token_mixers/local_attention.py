"""Sparse local and structured attention mixers: neighbourhood attention (M03), grid attention
(M04), bi-level routing attention (M06) and HiLo attention (M09).

Each mixer's geometry (how it cuts the grid, how it clips to small grids) is a torch-free function
here, shared by the cost formula and the module so that the two cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID_LAST,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    Rule,
    conv_cost,
    divides,
    linear_cost,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.sharing import GRID, WIDTH, Sharing
from search_space.ops.token_mixers.attention import HEAD_DIM, QKV_BIAS, window_geometry


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
        sharing=Sharing(
            elastic=("kernel", "head_dim"),
            chunks={"qkv.": (0, 3)},
            centred={"rpb": 1},
            note="a smaller kernel's position bias is the larger one's centre",
        ),
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


# -- bi-level routing attention (M06) --------------------------------------------------------------


@dataclass(frozen=True)
class RegionGeometry:
    """How bi-level routing attention cuts a grid into regions.

    Attributes:
        sizes: region side per axis, ``ceil(grid[a] / min(n_win, grid[a]))``.
        regions: regions per axis, ``ceil(grid[a] / sizes[a])``: ``n_win`` when it divides the
            axis (BiFormer at 224 px), fewer when padding a whole region would be needed.
        padded: the grid padded up to ``regions * sizes``.
        topk: regions each region routes to, ``min(topk, regions in all)``.
    """

    sizes: tuple[int, ...]
    regions: tuple[int, ...]
    padded: tuple[int, ...]
    topk: int

    @property
    def count(self) -> int:
        return math.prod(self.regions)

    @property
    def tokens(self) -> int:
        """Tokens per region."""
        return math.prod(self.sizes)


def region_geometry(grid: tuple[int, ...], n_win: int, topk: int) -> RegionGeometry:
    """Regions, padding and effective top-k of BiFormer's routing on ``grid``."""
    sizes = tuple(_ceil_div(g, min(n_win, g)) for g in grid)
    regions = tuple(_ceil_div(g, s) for g, s in zip(grid, sizes, strict=True))
    padded = tuple(r * s for r, s in zip(regions, sizes, strict=True))
    return RegionGeometry(sizes, regions, padded, min(topk, math.prod(regions)))


def _routing_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d = ctx.n, ctx.dim
    geo = region_geometry(ctx.grid, params["n_win"], params["topk"])
    r, n_pad = geo.count, math.prod(geo.padded)
    cost = linear_cost(n, d, 3 * d, bias=params["qkv_bias"])
    # region-to-region affinity of the mean queries and keys: R x R x d
    cost += Cost(macs=r * r * d, dynamic_macs=r * r * d, activations=r * r)
    cost += _attend(n_pad, geo.topk * geo.tokens, d, d // params["head_dim"])
    if params["lepe_kernel"]:
        cost += conv_cost(ctx.grid, d, d, params["lepe_kernel"], groups=d)
    return cost + linear_cost(n, d, d)


def _zero_or_odd(param: str) -> Rule:
    """Rule: ``params[param]`` is 0 (the part is off) or odd (a same-size conv)."""

    def rule(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
        value = params[param]
        return None if value == 0 or value % 2 else f"{param}={value} must be 0 (off) or odd"

    return rule


register(
    OpDef(
        name="routing_attention",
        sharing=Sharing(
            elastic=("n_win", "topk", "head_dim", "lepe_kernel"),
            chunks={"qkv.": (0, 3)},
            note="regions and routing only choose which tokens attend",
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.routing:RoutingAttention",
        family="M06",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N k N/R d + R^2 d + N d^2)",
        params=(
            ParamDef("n_win", int, 7, minimum=1, doc="regions per axis (BiFormer's n_win)"),
            ParamDef(
                "topk",
                int,
                4,
                minimum=1,
                doc="regions each region attends; clipped to the region count (= global)",
            ),
            HEAD_DIM,
            QKV_BIAS,
            ParamDef(
                "lepe_kernel",
                int,
                5,
                minimum=0,
                doc="depthwise conv on V added to the output (LePE / LCE); 0 = none",
            ),
        ),
        rules=(divides("head_dim"), _zero_or_odd("lepe_kernel")),
        cost=_routing_cost,
        doc="BiFormer bi-level routing attention: top-k regions by mean q/k, then token attention",
        examples=(
            {"n_win": 2, "topk": 1},
            {"n_win": 3, "topk": 9, "lepe_kernel": 0, "qkv_bias": False},
            {"n_win": 4, "topk": 2, "lepe_kernel": 3},
        ),
    )
)


# -- grid attention (M04) --------------------------------------------------------------------------


@dataclass(frozen=True)
class GridGeometry:
    """How MaxViT's grid attention cuts a grid into dilated windows.

    Attributes:
        cells: window side per axis, ``min(grid_size, grid[a])``: a window holds one token of
            each of ``cells`` equal cells along the axis.
        strides: the cell side (the dilation between a window's tokens), ``ceil(grid / cells)``.
        padded: the grid padded up to ``cells * strides``.
    """

    cells: tuple[int, ...]
    strides: tuple[int, ...]
    padded: tuple[int, ...]

    @property
    def tokens(self) -> int:
        """Tokens per window."""
        return math.prod(self.cells)

    @property
    def count(self) -> int:
        """Windows per sample."""
        return math.prod(self.strides)


def grid_geometry(grid: tuple[int, ...], grid_size: int) -> GridGeometry:
    """Cells, strides and padded extent of MaxViT grid attention on ``grid``."""
    cells = tuple(min(grid_size, g) for g in grid)
    strides = tuple(_ceil_div(g, c) for g, c in zip(grid, cells, strict=True))
    return GridGeometry(cells, strides, tuple(c * s for c, s in zip(cells, strides, strict=True)))


def _grid_attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d = ctx.n, ctx.dim
    heads = d // params["head_dim"]
    geo = grid_geometry(ctx.grid, params["grid_size"])
    table = math.prod(2 * c - 1 for c in geo.cells) * heads if params["rel_pos_bias"] else 0
    cost = linear_cost(n, d, 3 * d, bias=params["qkv_bias"]) + Cost(params=table)
    cost += _attend(math.prod(geo.padded), geo.tokens, d, heads)
    return cost + linear_cost(n, d, d)


register(
    OpDef(
        name="grid_attention",
        sharing=Sharing(
            elastic=("head_dim",),
            chunks={"qkv.": (0, 3)},
            keyed_by=(GRID,),
            note="its relative-position table spans the cells of the grid",
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.grid:GridAttention",
        family="M04",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N G^k d + N d^2)",
        params=(
            ParamDef(
                "grid_size",
                int,
                7,
                minimum=1,
                doc="grid side G: windows of G^k tokens spaced grid/G apart; clipped to the grid",
            ),
            HEAD_DIM,
            QKV_BIAS,
            ParamDef(
                "rel_pos_bias",
                bool,
                True,
                doc="learned relative position bias over cell offsets, a (2G-1)^k x heads table",
            ),
        ),
        rules=(divides("head_dim"),),
        cost=_grid_attention_cost,
        doc="MaxViT grid attention: sparse global mixing among tokens one cell apart",
        examples=(
            {"grid_size": 2},
            {"grid_size": 3, "rel_pos_bias": False, "qkv_bias": False},
            {"grid_size": 4},
        ),
    )
)


# -- HiLo attention (M09) --------------------------------------------------------------------------


def hilo_heads(heads: int, alpha: float, window: int) -> tuple[int, int]:
    """(Lo-Fi heads, Hi-Fi heads): LITv2's ``int(heads * alpha)`` Lo-Fi heads, and all heads
    Lo-Fi when ``window == 1`` (then HiLo is plain global attention)."""
    if window == 1:
        return heads, 0
    low = int(heads * alpha)
    return low, heads - low


def lofi_pool(grid: tuple[int, ...], window: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-axis kernel (= stride) of the Lo-Fi average pooling and the pooled grid.

    The kernel is clipped to the axis; the pooling rounds up (``ceil_mode``), so trailing
    positions a whole window does not cover are averaged on their own rather than dropped.
    """
    kernel = tuple(min(window, g) for g in grid)
    return kernel, tuple(_ceil_div(g, k) for g, k in zip(grid, kernel, strict=True))


def _hilo_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d, hd, ws = ctx.n, ctx.dim, params["head_dim"], params["window"]
    bias = params["qkv_bias"]
    low, high = hilo_heads(d // hd, params["alpha"], ws)
    cost = Cost()
    if high:
        h_dim = high * hd
        geo = window_geometry(ctx.grid, ws, shift=False)
        cost += linear_cost(n, d, 3 * h_dim, bias=bias)
        cost += _attend(math.prod(geo.padded), geo.tokens, h_dim, high)
        cost += linear_cost(n, h_dim, h_dim)
    if low:
        l_dim = low * hd
        m = n if ws == 1 else math.prod(lofi_pool(ctx.grid, ws)[1])
        cost += linear_cost(n, d, l_dim, bias=bias) + linear_cost(m, d, 2 * l_dim, bias=bias)
        cost += _attend(n, m, l_dim, low) + linear_cost(n, l_dim, l_dim)
    return cost


def _fraction(param: str) -> Rule:
    """Rule: ``params[param]`` lies in [0, 1]."""

    def rule(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
        value = params[param]
        return None if 0.0 <= value <= 1.0 else f"{param}={value} must lie in [0, 1]"

    return rule


register(
    OpDef(
        name="hilo_attention",
        sharing=Sharing(
            keyed_by=(WIDTH,),
            note="[Hi-Fi; Lo-Fi] channels split by a head count that follows the width",
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.hilo:HiLoAttention",
        family="M09",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N s^k d_hi + N^2 d_lo / s^k + N d^2)",
        params=(
            HEAD_DIM,
            ParamDef(
                "alpha",
                float,
                0.9,
                minimum=0.0,
                doc="share of heads in the Lo-Fi branch (int(heads * alpha) heads)",
            ),
            ParamDef(
                "window",
                int,
                2,
                minimum=1,
                doc="s: Hi-Fi window side and Lo-Fi pooling size; 1 = global attention",
            ),
            QKV_BIAS,
        ),
        rules=(divides("head_dim"), _fraction("alpha")),
        cost=_hilo_cost,
        doc="LITv2 HiLo: Hi-Fi heads attend in s x s windows, Lo-Fi heads attend s-pooled keys",
        examples=(
            {"alpha": 0.5, "head_dim": 16},
            {"window": 1},
            {"alpha": 0.0, "window": 3},
            {"alpha": 1.0, "window": 3, "qkv_bias": False},
        ),
    )
)
