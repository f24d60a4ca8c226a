"""Dense heads: segmentation (``seg_head``) and super-resolution (``sr_head``).

Both read the input and the stem's and every stage's outputs besides the last stage
(`OpDef.sources`; their context's ``sources`` holds those shapes). Costs follow fvcore: a bilinear
resize counts 4 MACs per output element and a nearest one 1; the pixel shuffle, sigmoid, products
and sums count none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    linear_cost,
    norm_cost,
)
from search_space.ops.norms import NORM_NAMES
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import Sharing

_MODULE = "search_space.nn.dense_heads"


def _grid_size(grid: tuple[int, ...]) -> int:
    return math.prod(grid)


def dense_head_call(
    ctx: OpContext, params: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Dense heads: ``(dim, num_classes, *, grid, sources, **params)``."""
    return (ctx.dim, ctx.num_classes), {"grid": ctx.grid, "sources": ctx.sources, **params}


def _resize_cost(channels: int, src: tuple[int, ...], dst: tuple[int, ...], rate: int) -> Cost:
    """A resize of ``channels`` maps from ``src`` to ``dst`` (free when the sizes match)."""
    if tuple(src) == tuple(dst):
        return Cost()
    out = channels * _grid_size(dst)
    return Cost(macs=rate * out, activations=out)


# -- segmentation ----------------------------------------------------------------------------------


def _seg_feeds(ctx: OpContext, params: Mapping[str, Any]) -> list[tuple[int, tuple[int, ...]]]:
    return list(ctx.sources[2:]) if params["fuse"] == "all" else [(ctx.dim, ctx.grid)]


def _seg_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    hidden, feeds = params["hidden"], _seg_feeds(ctx, params)
    target = max((tuple(g) for _, g in feeds), key=_grid_size)
    n = _grid_size(target)
    cost = Cost()
    for c, g in feeds:
        if hidden:
            cost += linear_cost(_grid_size(g), c, hidden)
        cost += _resize_cost(hidden or c, g, target, 4)
    width = hidden or ctx.dim
    if params["fuse"] == "all":
        cost += linear_cost(n, len(feeds) * hidden, hidden)
    cost += norm_cost(params["norm"], n * width, width)
    cost += linear_cost(n, width, ctx.num_classes)
    return cost + _resize_cost(ctx.num_classes, target, ctx.sources[0][1], 4)


def _seg_fits(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if params["fuse"] == "all" and not params["hidden"]:
        return "fuse='all' projects every stage to one width: hidden must be >= 1"
    return None


register(
    OpDef(
        name="seg_head",
        sharing=Sharing(note="hidden is not elastic: the fused concatenation's layout"),
        kind="head",
        module=f"{_MODULE}:SegHead",
        params=(
            ParamDef(
                "fuse",
                str,
                "last",
                choices=("last", "all"),
                doc="the last stage only (a U-Net decoder), or every stage (SegFormer's MLP "
                "decoder over a pyramid)",
            ),
            ParamDef("hidden", int, 0, minimum=0, doc="decoder width; 0: classify directly"),
            ParamDef("norm", str, "layernorm", choices=NORM_NAMES),
            ParamDef("act", str, "relu", choices=ACTIVATIONS, doc="after the norm"),
        ),
        cost=_seg_cost,
        rules=(_seg_fits,),
        call=dense_head_call,
        spatial_dims=(2,),
        examples=(
            {"hidden": 16},
            {"fuse": "all", "hidden": 16, "norm": "batchnorm"},
            {"norm": "none", "act": "identity"},
        ),
        output="mask",
        sources=True,
        doc="segmentation head: per-pixel logits (B, classes, H, W) at the input's resolution",
    )
)


# -- super-resolution ------------------------------------------------------------------------------


def scale_steps(scale: int) -> list[int]:
    """Upsampling steps of a scale: x2 steps for a power of two, one x3 step for 3."""
    steps = []
    while scale % 2 == 0:
        steps.append(2)
        scale //= 2
    return steps + ([scale] if scale > 1 else [])


def _sr_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    channels, image_grid = ctx.sources[0]
    grid, dim, hidden, scale = ctx.grid, ctx.dim, params["hidden"], params["scale"]
    cost = conv_cost(grid, dim, dim, 3) if params["body_conv"] else Cost()
    mode = params["upsampler"]
    if mode == "pixelshuffledirect":
        cost += conv_cost(grid, dim, channels * scale**2, 3)
        out = tuple(g * scale for g in grid)
    elif mode == "pixelshuffle":
        cost += conv_cost(grid, dim, hidden, 3)
        out = grid
        for r in scale_steps(scale):
            cost += conv_cost(out, hidden, r * r * hidden, 3)
            out = tuple(g * r for g in out)
        cost += conv_cost(out, hidden, channels, 3)
    else:  # nearest_conv
        out, c_in = grid, dim
        for r in scale_steps(scale):
            up = tuple(g * r for g in out)
            cost += _resize_cost(c_in, out, up, 1) + conv_cost(up, c_in, hidden, 3)
            if params["pixel_attention"]:
                cost += conv_cost(up, hidden, hidden, 1)
            cost += conv_cost(up, hidden, hidden, 3)
            out, c_in = up, hidden
        cost += conv_cost(out, hidden, channels, 3)
    if params["image_skip"] == "bilinear":
        cost += _resize_cost(channels, image_grid, out, 4)
    return cost


def _sr_fits(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if params["upsampler"] != "pixelshuffledirect" and not params["hidden"]:
        return f"upsampler {params['upsampler']!r} needs hidden >= 1"
    if params["pixel_attention"] and params["upsampler"] != "nearest_conv":
        return "pixel_attention is part of the 'nearest_conv' upsampler (PAN's U-PA)"
    if not ctx.sources:  # a space's declaration: the shapes are checked per spec
        return None
    image_grid = ctx.sources[0][1]
    if tuple(ctx.grid) != tuple(image_grid):
        return (
            f"a super-resolution body keeps the input's resolution {list(image_grid)}, but the "
            f"last stage's grid is {list(ctx.grid)}; allowed: a stride-1 stem (patch_embed with "
            "patch_size 3, stride 1, padding 1) and no downsampling"
        )
    if params["body_conv"]:
        width, grid = ctx.sources[1]
        if (width, tuple(grid)) != (ctx.dim, tuple(ctx.grid)):
            return (
                f"body_conv adds the stem's output ({width} channels on {list(grid)}) to the "
                f"body's ({ctx.dim} on {list(ctx.grid)}); allowed: equal widths and grids"
            )
    return None


register(
    OpDef(
        name="sr_head",
        sharing=Sharing(note="hidden and scale are not elastic"),
        kind="head",
        module=f"{_MODULE}:SRHead",
        params=(
            ParamDef("scale", int, 2, choices=(2, 3, 4), doc="upscaling factor"),
            ParamDef(
                "upsampler",
                str,
                "pixelshuffle",
                choices=("pixelshuffle", "pixelshuffledirect", "nearest_conv"),
                doc="SwinIR's conv + pixel shuffle, its lightweight direct shuffle, or PAN's "
                "nearest upsampling + convs",
            ),
            ParamDef("hidden", int, 64, minimum=0, doc="width of the upsampler's convs"),
            ParamDef(
                "body_conv",
                bool,
                True,
                doc="3x3 conv on the body's output, added to the stem's (a global residual)",
            ),
            ParamDef("pixel_attention", bool, False, doc="PAN's U-PA: attention per step"),
            ParamDef(
                "image_skip",
                str,
                "none",
                choices=("none", "bilinear"),
                doc="add the bilinear upsampling of the input image (PAN)",
            ),
        ),
        cost=_sr_cost,
        rules=(_sr_fits,),
        call=dense_head_call,
        spatial_dims=(2,),
        examples=(
            {"scale": 3, "hidden": 8},
            {"scale": 4, "upsampler": "pixelshuffledirect", "image_skip": "bilinear"},
            {
                "scale": 4,
                "upsampler": "nearest_conv",
                "hidden": 8,
                "pixel_attention": True,
                "image_skip": "bilinear",
            },
        ),
        output="image",
        sources=True,
        doc="super-resolution head: global residual, upsampler, image (B, C, sH, sW)",
    )
)
