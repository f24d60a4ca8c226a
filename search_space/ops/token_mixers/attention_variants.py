"""Attention variants with their own projections or normalisation: focused linear attention
(M07), outlook attention (M21), convolutional-projection attention (M01) and channel
(transposed) attention (M23)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID_LAST,
    LAYOUT_SEQUENCE,
    LAYOUT_TOKENS,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    conv_out,
    divides,
    linear_cost,
    norm_cost,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.sharing import GRID, Sharing
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
        sharing=Sharing(
            elastic=("head_dim", "kernel"),
            chunks={"qkv.": (0, 3)},
            keyed_by=(GRID,),
            note="a position embedding per token of the window clipped to the grid",
        ),
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
        sharing=Sharing(
            elastic=("head_dim",),
            note="attn emits k^2 x k^2 weights per head from (pooled) centres",
        ),
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


# -- convolutional-projection attention (M01, CvT) -------------------------------------------------


def _conv_attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    t, n, d, k = ctx.tokens, ctx.n, ctx.dim, params["kernel"]
    kv_grid = tuple(conv_out(g, k, params["stride_kv"], k // 2) for g in ctx.grid)
    m = math.prod(kv_grid)
    bias = params["qkv_bias"]
    # depthwise conv (no bias) + batch norm per projection; class tokens skip the convs
    cost = conv_cost(ctx.grid, d, d, k, groups=d, bias=False) + norm_cost("batchnorm", n * d, d)
    for _ in range(2):
        cost += conv_cost(kv_grid, d, d, k, groups=d, bias=False)
        cost += norm_cost("batchnorm", m * d, d)
    keys = m + ctx.prefix
    cost += linear_cost(t, d, d, bias=bias)
    cost += linear_cost(keys, d, d, bias=bias) + linear_cost(keys, d, d, bias=bias)
    scores = 2 * t * keys * d
    cost += Cost(
        macs=scores,
        dynamic_macs=scores,
        activations=(d // params["head_dim"]) * t * keys + t * d,
    )
    return cost + linear_cost(t, d, d)


register(
    OpDef(
        name="conv_attention",
        sharing=Sharing(elastic=("kernel", "stride_kv", "head_dim")),
        kind="token_mixer",
        module="search_space.nn.mixers.conv_attention:ConvAttention",
        family="M01",
        layout=LAYOUT_TOKENS,
        complexity="O(N^2 d / s^r + N d^2 + N d k^r)",
        params=(
            ParamDef("kernel", int, 3, minimum=1, doc="depthwise projection conv kernel (odd)"),
            ParamDef(
                "stride_kv", int, 2, minimum=1, doc="stride of the key/value convs (squeezed K/V)"
            ),
            HEAD_DIM,
            QKV_BIAS,
        ),
        rules=(divides("head_dim"), odd("kernel")),
        cost=_conv_attention_cost,
        doc="CvT convolutional projection: depthwise conv + BN before q/k/v linears, strided K/V",
        examples=(
            {"stride_kv": 1},
            {"kernel": 5, "stride_kv": 3, "qkv_bias": False},
            {"head_dim": 16},
        ),
    )
)


# -- channel (transposed) attention (M23) ----------------------------------------------------------


def _channel_attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d, hd = ctx.n, ctx.dim, params["head_dim"]
    heads = d // hd
    cost = linear_cost(n, d, 3 * d, bias=params["qkv_bias"])
    # per head a head_dim x head_dim map over the tokens, then applied to the tokens
    mixing = 2 * n * d * hd
    cost += Cost(macs=mixing, dynamic_macs=mixing, activations=heads * hd * hd + n * d)
    if params["style"] == "xca":
        cost += Cost(params=heads)  # learned temperature per head
    return cost + linear_cost(n, d, d)


register(
    OpDef(
        name="channel_attention",
        sharing=Sharing(elastic=("head_dim",), chunks={"qkv.": (0, 3)}),
        kind="token_mixer",
        module="search_space.nn.mixers.channel_attention:ChannelAttention",
        family="M23",
        layout=LAYOUT_SEQUENCE,
        complexity="O(N d h_d + N d^2)",
        params=(
            HEAD_DIM,
            QKV_BIAS,
            ParamDef(
                "style",
                str,
                "xca",
                choices=("xca", "davit"),
                doc="xca: L2-normalised q, k and a learned temperature (XCiT); davit: scaled k "
                "(DaViT channel group attention)",
            ),
        ),
        rules=(divides("head_dim"),),
        cost=_channel_attention_cost,
        doc="transposed self-attention across channels within head groups (XCiT XCA, DaViT)",
        examples=({"style": "davit"}, {"head_dim": 16, "qkv_bias": False}),
    )
)


# -- attention with learned attention biases (M01, LeViT / EfficientFormer) ------------------------


def _positive_values(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    """Rule: at least one value channel per head."""
    if int(params["attn_ratio"] * params["key_dim"]) < 1:
        ratio, key_dim = params["attn_ratio"], params["key_dim"]
        return f"attn_ratio={ratio} leaves no value channels for key_dim={key_dim}"
    return None


def _levit_attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d, heads, kd = ctx.n, ctx.dim, params["heads"], params["key_dim"]
    vd = int(params["attn_ratio"] * kd)
    qkv_out, val_all = heads * (2 * kd + vd), heads * vd
    bn = params["norm"] == "batchnorm"
    # LeViT's BN-linears have no bias (the BN shifts); EfficientFormer's plain linears have one
    cost = linear_cost(n, d, qkv_out, bias=not bn) + linear_cost(n, val_all, d, bias=not bn)
    if bn:
        cost += norm_cost("batchnorm", n * qkv_out, qkv_out) + norm_cost("batchnorm", n * d, d)
    scores = n * n * heads * (kd + vd)
    cost += Cost(
        params=heads * n,  # one bias per head and absolute offset
        macs=scores,
        dynamic_macs=scores,
        activations=heads * n * n + n * val_all,
    )
    return cost


register(
    OpDef(
        name="levit_attention",
        sharing=Sharing(
            elastic=("heads",),
            keyed_by=(GRID,),
            note="[q | k | v] packed per head (fewer heads: a prefix); a bias per grid offset",
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.levit_attention:LeViTAttention",
        family="M01",
        layout=LAYOUT_SEQUENCE,
        complexity="O(N^2 h (k + v) + N d h (2k + v))",
        params=(
            ParamDef("key_dim", int, 32, minimum=1, doc="query/key channels per head"),
            ParamDef("heads", int, 8, minimum=1, doc="heads, independent of the width"),
            ParamDef(
                "attn_ratio", float, 4.0, minimum=0.0, doc="value channels = int(ratio * key_dim)"
            ),
            ParamDef(
                "norm",
                str,
                "batchnorm",
                choices=("batchnorm", "none"),
                doc="batchnorm: LeViT's BN-linears (no bias); none: biased linears "
                "(EfficientFormer)",
            ),
            ParamDef(
                "act",
                str,
                "hardswish",
                choices=("hardswish", "identity", "gelu", "relu"),
                doc="activation before the output projection (LeViT: hardswish)",
            ),
        ),
        rules=(_positive_values,),
        cost=_levit_attention_cost,
        doc="LeViT attention: attention biases per absolute offset, BN-linears, hardswish; "
        "EfficientFormer's MHSA with norm=none, act=identity",
        examples=(
            {"norm": "none", "act": "identity"},
            {"heads": 3, "key_dim": 16, "attn_ratio": 2.0},
        ),
    )
)
