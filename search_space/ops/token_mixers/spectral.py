"""Spectral token mixer (catalog family M10): GFNet's global filter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import LAYOUT_GRID, Cost, OpContext, OpDef, fft_macs
from search_space.ops.registries import register
from search_space.ops.sharing import GRID, Sharing


def rfft_grid(grid: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the real FFT of a grid: the last axis keeps its W // 2 + 1 non-negative bins."""
    return (*grid[:-1], grid[-1] // 2 + 1)


def _global_filter_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    bins = math.prod(rfft_grid(ctx.grid))
    # a real forward and a real inverse FFT over the grid, once per channel; the complex product is
    # elementwise (free)
    transforms = 2 * fft_macs(ctx.n, ctx.dim)
    return Cost(
        params=2 * bins * ctx.dim,
        macs=transforms,
        fft_macs=transforms,
        activations=2 * 2 * bins * ctx.dim + ctx.n * ctx.dim,
    )


register(
    OpDef(
        name="global_filter",
        sharing=Sharing(
            keyed_by=(GRID,), note="one complex weight per channel and frequency of the grid"
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.spectral:GlobalFilter",
        family="M10",
        layout=LAYOUT_GRID,
        complexity="O(N d log N)",
        params=(),
        cost=_global_filter_cost,
        doc="rfft over the grid, learnable complex filter per channel and frequency, irfft (GFNet)",
    )
)
