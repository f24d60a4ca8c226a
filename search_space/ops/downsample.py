"""Downsamplers: how a stage is entered (change of width and/or grid).

``ctx.dim`` is the previous width, ``ctx.out_dim`` the stage's width. Prefix (class) tokens pass
through a linear projection when the width changes (the PiT convention).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    PER_TOKEN,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    conv_out,
    linear_cost,
)
from search_space.ops.base import norm_cost as _norm
from search_space.ops.norms import NORM_NAMES
from search_space.ops.registries import register
from search_space.ops.sharing import GRID, NEIGHBOURS, Sharing

_MODULE = "search_space.nn.downsample"


def conv_padding(kernel: int, stride: int) -> int:
    """Padding that maps a grid of size g to ceil(g / stride) for the usual kernels."""
    return kernel // 2 if kernel % 2 else max(0, (kernel - stride) // 2)


def _prefix_cost(ctx: OpContext) -> Cost:
    if ctx.prefix and ctx.dim != ctx.out_dim:
        return linear_cost(ctx.prefix, ctx.dim, ctx.out_dim)
    return Cost()


# -- none ------------------------------------------------------------------------------------------


def _same_width(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if ctx.dim != ctx.out_dim:
        return f"keeps the width, but the width changes from {ctx.dim} to {ctx.out_dim}"
    return None


register(
    OpDef(
        name="none",
        sharing=Sharing(),
        kind="downsample",
        module=f"{_MODULE}:NoDownsample",
        causal=PER_TOKEN,
        params=(),
        cost=lambda ctx, params: Cost(),
        rules=(_same_width,),
        doc="keep grid and width (isotropic stages)",
    )
)


# -- conv ------------------------------------------------------------------------------------------


def _conv_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    k, s = params["kernel"], params["stride"]
    return tuple(conv_out(g, k, s, conv_padding(k, s)) for g in ctx.grid)


def _conv_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid = _conv_grid(ctx, params)
    cost = conv_cost(grid, ctx.dim, ctx.out_dim, params["kernel"], bias=params["bias"])
    if params["norm"] != "none":
        if params["norm_position"] == "pre":
            cost += _norm(params["norm"], ctx.n * ctx.dim, ctx.dim)
        else:
            cost += _norm(params["norm"], math.prod(grid) * ctx.out_dim, ctx.out_dim)
    if params["residual"]:  # the shortcut: 2x2 average pooling, a projection to the new width
        n = math.prod(grid)
        cost += Cost(activations=n * ctx.dim)
        if ctx.dim != ctx.out_dim:
            cost += linear_cost(n, ctx.dim, ctx.out_dim, bias=False)
    return cost + _prefix_cost(ctx)


def _residual_halves(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if not params["residual"]:
        return None
    if params["stride"] != 2:
        return f"residual needs stride 2 (its shortcut pools 2x2), not {params['stride']}"
    if _conv_grid(ctx, params) != _half_grid(ctx, params):
        return (
            f"residual needs a conv that halves the grid, but kernel {params['kernel']} maps "
            f"{ctx.grid} to {_conv_grid(ctx, params)}"
        )
    return None


register(
    OpDef(
        name="conv",
        sharing=Sharing(),
        kind="downsample",
        module=f"{_MODULE}:ConvDownsample",
        params=(
            ParamDef("kernel", int, 3, minimum=1),
            ParamDef("stride", int, 2, minimum=1),
            ParamDef("norm", str, "none", choices=NORM_NAMES),
            ParamDef(
                "norm_position",
                str,
                "post",
                choices=("pre", "post"),
                doc="norm before the conv (ConvNeXt) or after it (EfficientFormer)",
            ),
            ParamDef("bias", bool, True, doc="conv bias (InternImage: none)"),
            ParamDef(
                "residual",
                bool,
                False,
                doc="add a shortcut of 2x2 average pooling and a bias-free projection "
                "(ViT-ResNAS's residual spatial reduction; stride 2)",
            ),
        ),
        cost=_conv_cost,
        out_grid=_conv_grid,
        rules=(_residual_halves,),
        examples=({"kernel": 3, "norm": "layernorm", "norm_position": "pre", "residual": True},),
        doc="strided convolution, optionally with a norm before or after, and optionally "
        "residual (ViT-ResNAS)",
    )
)


# -- patch merging ---------------------------------------------------------------------------------


def _half_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple((g + 1) // 2 for g in ctx.grid)


def _merge_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid = _half_grid(ctx, params)
    n, merged = math.prod(grid), ctx.dim * 2 ** len(grid)
    cost = _norm(params["norm"], n * merged, merged)
    cost += linear_cost(n, merged, ctx.out_dim, bias=False)
    return cost + _prefix_cost(ctx)


register(
    OpDef(
        name="patch_merging",
        sharing=Sharing(chunks={"norm.": (0, NEIGHBOURS), "reduction.": (1, NEIGHBOURS)}),
        kind="downsample",
        module=f"{_MODULE}:PatchMerging",
        params=(ParamDef("norm", str, "layernorm", choices=NORM_NAMES),),
        cost=_merge_cost,
        out_grid=_half_grid,
        doc="Swin patch merging: concatenate 2x2 neighbours, norm, linear to the new width",
    )
)


# -- pool ------------------------------------------------------------------------------------------


def _pool_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n = math.prod(_half_grid(ctx, params))
    cost = Cost(activations=n * ctx.dim)
    if ctx.dim != ctx.out_dim:
        cost += linear_cost(n, ctx.dim, ctx.out_dim, bias=params["bias"])
        cost += _norm(params["norm"], n * ctx.out_dim, ctx.out_dim)
    return cost + _prefix_cost(ctx)


register(
    OpDef(
        name="pool",
        sharing=Sharing(),
        kind="downsample",
        module=f"{_MODULE}:PoolDownsample",
        params=(
            ParamDef("bias", bool, True, doc="bias of the projection (Next-ViT: none)"),
            ParamDef("norm", str, "none", choices=NORM_NAMES, doc="after the projection"),
        ),
        cost=_pool_cost,
        out_grid=_half_grid,
        doc="2x2 average pooling (ceil mode), then a pointwise projection and norm if the width "
        "changes (Next-ViT patch embedding: no bias, batch norm)",
    )
)


# -- embed -----------------------------------------------------------------------------------------

CLASS_TOKENS = ("none", "learned", "mean")


def _embed_prefix(ctx: OpContext, params: Mapping[str, Any]) -> int:
    return ctx.prefix + (params["class_token"] != "none")


def _embed_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    cost = Cost(activations=(ctx.n + _embed_prefix(ctx, params)) * ctx.out_dim)
    if ctx.dim != ctx.out_dim:
        cost += linear_cost(ctx.n, ctx.dim, ctx.out_dim) + _prefix_cost(ctx)
    if params["class_token"] == "learned":
        cost += Cost(params=ctx.out_dim)
    # the mean is free (fvcore counts no reductions); so is adding positions
    if params["pos_embed"] == "learned":
        cost += Cost(params=(ctx.n + _embed_prefix(ctx, params)) * ctx.out_dim)
    return cost


register(
    OpDef(
        name="embed",
        sharing=Sharing(keyed_by=(GRID,), note="a position embedding per token of the grid"),
        kind="downsample",
        module=f"{_MODULE}:EmbedTokens",
        params=(
            ParamDef(
                "class_token",
                str,
                "learned",
                choices=CLASS_TOKENS,
                doc="prepend a class token: learned (CaiT, VOLO), the mean of the grid tokens "
                "(SpectFormer-H), or none",
            ),
            ParamDef(
                "pos_embed",
                str,
                "none",
                choices=("none", "learned", "sinusoidal"),
                doc="add a position embedding over all tokens (VOLO after its outlooker stage)",
            ),
        ),
        cost=_embed_cost,
        out_prefix=_embed_prefix,
        doc="keep the grid; prepend a class token and/or add positions mid-network, as stems "
        "do (a linear projection first if the width changes)",
    )
)
