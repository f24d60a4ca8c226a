"""Stems: from the raw input to the first stage's tokens.

Every stem takes ``cls_token`` (prepend one learned class token) and ``pos_embed`` (``none``,
``learned`` absolute embeddings over all tokens, or fixed ``sinusoidal``). Image stems work on 2-D
grids and, for feature sequences, on 1-D grids.
"""

from __future__ import annotations

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
    norm_cost,
)
from search_space.ops.norms import NORM_NAMES
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import Sharing

_MODULE = "search_space.nn.stems"

POS_EMBEDS = ("none", "learned", "sinusoidal")
COMMON = (
    ParamDef("cls_token", bool, False, doc="prepend a learned class token"),
    ParamDef("pos_embed", str, "none", choices=POS_EMBEDS, doc="position embedding"),
)


def prefix_tokens(params: Mapping[str, Any]) -> int:
    """Number of prefix tokens a stem with these parameters produces."""
    return 1 if params.get("cls_token") else 0


def _embedding_cost(ctx: OpContext, params: Mapping[str, Any], out_grid: tuple[int, ...]) -> Cost:
    n = 1
    for g in out_grid:
        n *= g
    tokens = n + prefix_tokens(params)
    cost = Cost(params=ctx.out_dim if params["cls_token"] else 0)
    if params["pos_embed"] == "learned":
        cost += Cost(params=tokens * ctx.out_dim)
    return cost


# -- patch_embed -----------------------------------------------------------------------------------


def _patch_stride(params: Mapping[str, Any]) -> int:
    return int(params["stride"] or params["patch_size"])


def _patch_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    k, s, p = params["patch_size"], _patch_stride(params), params["padding"]
    return tuple(conv_out(g, k, s, p) for g in ctx.grid)


def _patch_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid = _patch_grid(ctx, params)
    n = 1
    for g in grid:
        n *= g
    cost = conv_cost(grid, ctx.dim, ctx.out_dim, params["patch_size"], bias=params["bias"])
    cost += norm_cost(params["norm"], n * ctx.out_dim, ctx.out_dim)
    return cost + _embedding_cost(ctx, params, grid)


def _patch_fits(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if any(g < 1 for g in _patch_grid(ctx, params)):
        return f"patch_size {params['patch_size']} is larger than the input {list(ctx.grid)}"
    return None


register(
    OpDef(
        name="patch_embed",
        sharing=Sharing(),
        kind="stem",
        module=f"{_MODULE}:PatchEmbed",
        params=(
            ParamDef("patch_size", int, 4, minimum=1, doc="convolution kernel"),
            ParamDef("stride", int, 0, minimum=0, doc="stride; 0 means patch_size"),
            ParamDef("padding", int, 0, minimum=0),
            ParamDef("norm", str, "none", choices=NORM_NAMES, doc="norm after the projection"),
            ParamDef("bias", bool, True, doc="convolution bias (NAS-Bench-201: false)"),
            *COMMON,
        ),
        cost=_patch_cost,
        out_grid=_patch_grid,
        rules=(_patch_fits,),
        doc="one strided conv (ViT/Swin patchify; PoolFormer 7x7/s4; CvT conv token embedding)",
    )
)


# -- conv_stem -------------------------------------------------------------------------------------


def _conv_stem_widths(ctx: OpContext, params: Mapping[str, Any]) -> list[int]:
    hidden = params["hidden"] or max(1, ctx.out_dim // 2)
    return [hidden] * (params["num_convs"] - 1) + [ctx.out_dim]


def _conv_stem_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    grid = ctx.grid
    k = params["kernel"]
    for _ in range(params["num_convs"]):
        grid = tuple(conv_out(g, k, 2, k // 2) for g in grid)
    return grid


def _conv_stem_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid, c_in, cost = ctx.grid, ctx.dim, Cost()
    for c_out in _conv_stem_widths(ctx, params):
        k = params["kernel"]
        grid = tuple(conv_out(g, k, 2, k // 2) for g in grid)
        n = 1
        for g in grid:
            n *= g
        cost += conv_cost(grid, c_in, c_out, k, bias=params["bias"])
        cost += norm_cost(params["norm"], n * c_out, c_out)
        c_in = c_out
    return cost + _embedding_cost(ctx, params, grid)


register(
    OpDef(
        name="conv_stem",
        sharing=Sharing(),
        kind="stem",
        module=f"{_MODULE}:ConvStem",
        params=(
            ParamDef("num_convs", int, 2, minimum=1, doc="stride-2 convolutions (stride 2**n)"),
            ParamDef("kernel", int, 3, minimum=1),
            ParamDef("hidden", int, 0, minimum=0, doc="width of inner convs; 0 means out/2"),
            ParamDef("norm", str, "batchnorm", choices=NORM_NAMES, doc="norm after every conv"),
            ParamDef("act", str, "relu", choices=ACTIVATIONS, doc="activation after inner convs"),
            ParamDef("final_act", bool, True, doc="activation after the last conv too"),
            ParamDef("bias", bool, True),
            *COMMON,
        ),
        cost=_conv_stem_cost,
        out_grid=_conv_stem_grid,
        doc="stacked stride-2 convolutions with norm and activation (EfficientFormer, LeViT)",
    )
)


# -- token inputs ----------------------------------------------------------------------------------


def _token_embed_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    table = Cost(params=ctx.dim * ctx.out_dim, activations=ctx.n * ctx.out_dim)
    return table + _embedding_cost(ctx, params, ctx.grid)


register(
    OpDef(
        name="token_embed",
        sharing=Sharing(),
        kind="stem",
        module=f"{_MODULE}:TokenEmbed",
        causal=PER_TOKEN,
        params=COMMON,
        cost=_token_embed_cost,
        spatial_dims=(1,),
        doc="embedding table for integer token ids (vocabulary inputs)",
    )
)


def _feature_embed_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    proj = Cost(
        params=ctx.dim * ctx.out_dim + ctx.out_dim,
        macs=ctx.n * ctx.dim * ctx.out_dim,
        activations=ctx.n * ctx.out_dim,
    )
    return proj + _embedding_cost(ctx, params, ctx.grid)


register(
    OpDef(
        name="feature_embed",
        sharing=Sharing(),
        kind="stem",
        module=f"{_MODULE}:FeatureEmbed",
        causal=PER_TOKEN,
        params=COMMON,
        cost=_feature_embed_cost,
        spatial_dims=(1,),
        doc="linear projection of float feature vectors (feature-sequence inputs)",
    )
)
