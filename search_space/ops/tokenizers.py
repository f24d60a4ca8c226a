"""Stems beyond one patchify conv: explicit conv stacks and T2T-ViT's soft split.

``conv_stack`` spells out every convolution of a stem (width, stride, kernel): MaxViT's two-conv
stem (3x3/s2, 3x3/s1), LeViT's four 3x3/s2 Conv-BN with hard-swish between, Next-ViT's
ConvBNReLU stack (strides 2, 1, 1, 2) plus its first 1x1 patch embedding, DiNAT's tokenizer
(two 3x3/s2 convs, then LayerNorm only). ``conv_stem`` stays
the short form for equal inner widths and all strides 2. CvT's convolutional token embedding is
``patch_embed`` with ``patch_size`` 7, ``stride`` 4, ``padding`` 2 and ``norm`` layernorm.

``soft_split`` is the tokens-to-token module of "Tokens-to-Token ViT: Training Vision Transformers
from Scratch on ImageNet": unfold 7x7/s4 (pad 2), a token performer or transformer to
``token_dim``, unfold 3x3/s2 (pad 1), another, unfold 3x3/s2 (pad 1), linear to the width: 16x
fewer tokens.
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
    conv_out,
    linear_cost,
    norm_cost,
)
from search_space.ops.norms import NORM_NAMES
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import Sharing
from search_space.ops.stems import COMMON, _embedding_cost

_MODULE = "search_space.nn.tokenizers"


# -- conv_stack ------------------------------------------------------------------------------------


def stack_layers(ctx: OpContext, params: Mapping[str, Any]) -> list[tuple[int, int, int, int]]:
    """``(c_in, c_out, kernel, stride)`` of every conv; the last one outputs the stage width."""
    widths = [ctx.dim, *params["widths"], ctx.out_dim]
    return [
        (widths[i], widths[i + 1], params["kernels"][i], params["strides"][i])
        for i in range(len(params["strides"]))
    ]


def _stack_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    grid = ctx.grid
    for _, _, k, s in stack_layers(ctx, params):
        grid = tuple(conv_out(g, k, s, k // 2) for g in grid)
    return grid


def _stack_lengths(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    n = len(params["strides"])
    if len(params["kernels"]) != n or len(params["widths"]) != n - 1:
        return (
            f"needs one kernel per stride and one width per inner conv: {n} strides, "
            f"{len(params['kernels'])} kernels, {len(params['widths'])} widths (allowed: "
            f"{n} kernels, {n - 1} widths)"
        )
    return None


def _stack_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid, cost = ctx.grid, Cost()
    layers = stack_layers(ctx, params)
    for i, (c_in, c_out, k, s) in enumerate(layers):
        grid = tuple(conv_out(g, k, s, k // 2) for g in grid)
        cost += conv_cost(grid, c_in, c_out, k, bias=params["bias"])
        if params["inner_norm"] if i < len(layers) - 1 else params["final_norm"]:
            cost += norm_cost(params["norm"], math.prod(grid) * c_out, c_out)
    return cost + _embedding_cost(ctx, params, grid)


register(
    OpDef(
        name="conv_stack",
        sharing=Sharing(),
        kind="stem",
        module=f"{_MODULE}:ConvStack",
        params=(
            ParamDef("widths", list, (32,), minimum=1, doc="outputs of all but the last conv"),
            ParamDef("strides", list, (2, 2), minimum=1, doc="one stride per conv"),
            ParamDef("kernels", list, (3, 3), minimum=1, doc="one kernel per conv (padding k//2)"),
            ParamDef("norm", str, "batchnorm", choices=NORM_NAMES, doc="after every conv"),
            ParamDef("act", str, "relu", choices=ACTIVATIONS, doc="after every inner conv"),
            ParamDef("inner_norm", bool, True, doc="norm after the inner convs (DiNAT: none)"),
            ParamDef("final_norm", bool, True, doc="norm after the last conv"),
            ParamDef("final_act", bool, True, doc="activation after the last conv too"),
            ParamDef("bias", bool, False, doc="conv biases (Conv-BN stacks: none)"),
            *COMMON,
        ),
        rules=(_stack_lengths,),
        cost=_stack_cost,
        out_grid=_stack_grid,
        doc="explicit conv stack (MaxViT, LeViT, Next-ViT stems): per-conv widths/strides/kernels",
    )
)


# -- soft_split ------------------------------------------------------------------------------------

# (kernel, stride, padding) of T2T-ViT's three soft splits
SPLITS = ((7, 4, 2), (3, 2, 1), (3, 2, 1))


def split_grids(grid: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Token grids after each of the three soft splits."""
    grids = []
    for k, s, p in SPLITS:
        grid = tuple(conv_out(g, k, s, p) for g in grid)
        grids.append(grid)
    return grids


def token_mixer_cost(tokens: int, dim: int, emb: int, params: Mapping[str, Any]) -> Cost:
    """One T2T token layer on ``tokens`` vectors of ``dim`` producing ``emb`` channels.

    Performer: LN, k/q/v linear (bias), positive random features exp(w^T x - |x|^2 / 2) for k and
    q (m = int(emb * kernel_ratio) fixed features), linear attention (q' (k'^T v) / q' sum k'),
    projection, ``v`` as the skip, then LN + MLP (ratio 1) with a residual.
    Transformer: LN, qkv linear (no bias), one-head softmax attention at width emb, projection,
    ``v`` as the skip, then LN + MLP (ratio 1) with a residual.
    """
    t = tokens
    cost = norm_cost("layernorm", t * dim, dim)
    if params["mixer"] == "performer":
        m = int(emb * params["kernel_ratio"])
        attn_macs = 2 * t * emb * m + t * m + 2 * t * emb * m  # features; normaliser; k'^T v, q'(.)
        cost += linear_cost(t, dim, 3 * emb) + Cost(
            macs=attn_macs, dynamic_macs=attn_macs - 2 * t * emb * m
        )
    else:
        attn_macs = 2 * t * t * emb
        cost += linear_cost(t, dim, 3 * emb, bias=False)
        cost += Cost(macs=attn_macs, dynamic_macs=attn_macs, activations=t * t)
    cost += linear_cost(t, emb, emb)  # proj
    cost += norm_cost("layernorm", t * emb, emb)
    return cost + linear_cost(t, emb, emb) + linear_cost(t, emb, emb)  # MLP, ratio 1


def _soft_split_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    g1, g2, g3 = split_grids(ctx.grid)
    emb = params["token_dim"]
    (k0, _, _), (k1, _, _), (k2, _, _) = SPLITS
    cost = token_mixer_cost(math.prod(g1), ctx.dim * k0 * k0, emb, params)
    cost += token_mixer_cost(math.prod(g2), emb * k1 * k1, emb, params)
    cost += linear_cost(math.prod(g3), emb * k2 * k2, ctx.out_dim)
    return cost + _embedding_cost(ctx, params, g3)


def _soft_split_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    return split_grids(ctx.grid)[-1]


register(
    OpDef(
        name="soft_split",
        sharing=Sharing(note="token_dim is keyed: each unfolding packs (token_dim, k x k)"),
        kind="stem",
        module=f"{_MODULE}:SoftSplit",
        params=(
            ParamDef("token_dim", int, 64, minimum=1, doc="width of the tokens between splits"),
            ParamDef(
                "mixer",
                str,
                "performer",
                choices=("performer", "transformer"),
                doc="T2T layer between splits (T2T-ViT-14: performer; T2T-ViT_t-14: transformer)",
            ),
            ParamDef("kernel_ratio", float, 0.5, minimum=0.0625, doc="performer features / width"),
            *COMMON,
        ),
        cost=_soft_split_cost,
        out_grid=_soft_split_grid,
        spatial_dims=(2,),
        doc="T2T-ViT tokens-to-token: unfold 7/4, T2T layer, unfold 3/2, T2T layer, unfold 3/2",
    )
)
