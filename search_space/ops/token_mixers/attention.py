"""Attention token mixers (catalog families M01, M02, M05, M07)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID_LAST,
    LAYOUT_TOKENS,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    divides,
    linear_cost,
    norm_cost,
)
from search_space.ops.causal import CAUSAL, causal_flag, causal_needs_sequence
from search_space.ops.registries import register
from search_space.ops.sharing import GRID, Sharing

_MODULE = "search_space.nn.mixers.attention"

# parameters every multi-head attention mixer shares
HEAD_DIM = ParamDef(
    "head_dim", int, 32, minimum=1, doc="channels per head; heads = width / head_dim"
)
QKV_BIAS = ParamDef("qkv_bias", bool, True)
# how attention scores become weights: softmax (ViT), or MPCViT's cheaper forms for secure
# multi-party computation, where the softmax's exponentials and division dominate the cost
SCORES = ParamDef(
    "scores",
    str,
    "softmax",
    choices=("softmax", "relu", "scale"),
    doc="softmax; relu: ReLU(s) / sum ReLU(s); scale: s / keys (MPCViT's ReLU and scaling "
    "attention)",
)


def _attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    t, d = ctx.tokens, ctx.dim
    qkv = linear_cost(t, d, 3 * d, bias=params["qkv_bias"])
    # scores Q K^T and the weighted sum A V: each t * t * head_dim per head, d = heads * head_dim
    scores = Cost(
        macs=2 * t * t * d,
        dynamic_macs=2 * t * t * d,
        activations=(d // params["head_dim"]) * t * t + t * d,
    )
    return qkv + scores + linear_cost(t, d, d)


register(
    OpDef(
        name="attention",
        sharing=Sharing(elastic=("head_dim", "scores"), chunks={"qkv.": (0, 3)}),
        kind="token_mixer",
        module=f"{_MODULE}:Attention",
        family="M01",
        layout=LAYOUT_TOKENS,
        complexity="O(N^2 d + N d^2)",
        params=(HEAD_DIM, QKV_BIAS, CAUSAL, SCORES),
        rules=(divides("head_dim"), causal_needs_sequence),
        cost=_attention_cost,
        # the masked scores are still computed (scaled_dot_product_attention's dense kernels),
        # so the cost is that of the full attention
        causal=causal_flag("causal mask on the scores: token t attends to tokens <= t"),
        examples=({"causal": True}, {"scores": "relu"}, {"scores": "scale", "causal": True}),
        doc="global multi-head softmax self-attention (ViT, DeiT, CAFormer; GPT when causal; "
        "MPCViT's ReLU or scaling attention with `scores`)",
    )
)


# -- window attention (M02) ------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowGeometry:
    """How a grid is cut into attention windows; shared by the cost formula and the module.

    Attributes:
        windows: effective window per axis, ``min(window, grid[a])``.
        shifts: cyclic shift per axis; ``window // 2`` when shifting and the window is smaller
            than the axis, else 0 (a window spanning the axis has nothing to shift against).
        padded: the grid padded up to a multiple of the window on every axis.
    """

    windows: tuple[int, ...]
    shifts: tuple[int, ...]
    padded: tuple[int, ...]

    @property
    def tokens(self) -> int:
        """Tokens per window."""
        return math.prod(self.windows)

    @property
    def count(self) -> int:
        """Windows per sample."""
        return math.prod(p // w for p, w in zip(self.padded, self.windows, strict=True))


def window_geometry(grid: tuple[int, ...], window: int, shift: bool) -> WindowGeometry:
    """Effective windows, shifts and padded grid of Swin-style window attention on ``grid``."""
    windows = tuple(min(window, g) for g in grid)
    shifts = tuple(
        w // 2 if shift and window < g else 0 for w, g in zip(windows, grid, strict=True)
    )
    padded = tuple(-(-g // w) * w for g, w in zip(grid, windows, strict=True))
    return WindowGeometry(windows, shifts, padded)


def _window_attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d = ctx.n, ctx.dim
    heads = d // params["head_dim"]
    geo = window_geometry(ctx.grid, params["window"], params["shift"])
    n_pad, t = math.prod(geo.padded), geo.tokens
    # q/k/v are projected on the real tokens only and padded afterwards, so padding costs
    # attention MACs but no projection MACs.
    qkv = linear_cost(n, d, 3 * d, bias=params["qkv_bias"])
    table = math.prod(2 * w - 1 for w in geo.windows) * heads if params["rel_pos_bias"] else 0
    # every padded token attends to the t tokens of its window: QK^T and AV, t * head_dim each
    scores = Cost(
        params=table,
        macs=2 * n_pad * t * d,
        dynamic_macs=2 * n_pad * t * d,
        activations=heads * n_pad * t + n_pad * d,
    )
    return qkv + scores + linear_cost(n, d, d)


register(
    OpDef(
        name="window_attention",
        sharing=Sharing(
            elastic=("head_dim", "shift"),
            chunks={"qkv.": (0, 3)},
            keyed_by=(GRID,),
            note="its relative-position table spans the window clipped to the grid",
        ),
        kind="token_mixer",
        module=f"{_MODULE}:WindowAttention",
        family="M02",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N M^k d + N d^2)",
        params=(
            ParamDef(
                "window",
                int,
                7,
                minimum=1,
                doc="window side M; clipped to the grid on each axis (then no shift there)",
            ),
            HEAD_DIM,
            ParamDef("shift", bool, False, doc="cyclic shift by window // 2 with the Swin mask"),
            QKV_BIAS,
            ParamDef(
                "rel_pos_bias",
                bool,
                True,
                doc="learned relative position bias, a (2M-1)^k x heads table",
            ),
        ),
        rules=(divides("head_dim"),),
        cost=_window_attention_cost,
        doc="Swin window multi-head self-attention, optionally shifted, relative position bias",
        examples=(
            {"shift": True, "window": 4},
            {"window": 3},
            {"window": 3, "shift": True},
            {"window": 16, "rel_pos_bias": False, "qkv_bias": False},
            {"shift": True},
        ),
    )
)


# -- spatial-reduction attention (M05) -------------------------------------------------------------


def sr_geometry(grid: tuple[int, ...], sr_ratio: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-axis reduction kernel (``min(sr_ratio, grid[a])``) and the reduced key/value grid.

    The reduction conv has no padding (as in PVT), so trailing rows a kernel does not fit are left
    out of the keys and values; they still get queries.
    """
    kernel = tuple(min(sr_ratio, g) for g in grid)
    return kernel, tuple(g // k for g, k in zip(grid, kernel, strict=True))


def _sr_attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d, bias = ctx.n, ctx.dim, params["qkv_bias"]
    cost = linear_cost(n, d, d, bias=bias)
    m = n
    if params["sr_ratio"] > 1:
        kernel, reduced = sr_geometry(ctx.grid, params["sr_ratio"])
        m = math.prod(reduced)
        cost += conv_cost(reduced, d, d, kernel) + norm_cost("layernorm", m * d, d)
    cost += linear_cost(m, d, 2 * d, bias=bias)
    # QK^T and AV over m keys, head_dim each, d = heads * head_dim
    cost += Cost(
        macs=2 * n * m * d,
        dynamic_macs=2 * n * m * d,
        activations=(d // params["head_dim"]) * n * m + n * d,
    )
    return cost + linear_cost(n, d, d)


register(
    OpDef(
        name="sr_attention",
        sharing=Sharing(elastic=("head_dim",), chunks={"kv.": (0, 2)}),
        kind="token_mixer",
        module=f"{_MODULE}:SRAttention",
        family="M05",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N^2 d / R^k + N d^2)",
        params=(
            ParamDef(
                "sr_ratio",
                int,
                2,
                minimum=1,
                doc="kernel = stride R of the key/value reduction conv; 1 = global attention",
            ),
            HEAD_DIM,
            QKV_BIAS,
        ),
        rules=(divides("head_dim"),),
        cost=_sr_attention_cost,
        doc="PVT spatial-reduction attention: keys/values from a strided-conv-reduced grid",
        examples=({"sr_ratio": 1}, {"sr_ratio": 4, "qkv_bias": False}, {"sr_ratio": 3}),
    )
)


# -- linear attention (M07) ------------------------------------------------------------------------


def _linear_attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    t, d, hd = ctx.tokens, ctx.dim, params["head_dim"]
    qkv = linear_cost(t, d, 3 * d, bias=params["qkv_bias"])
    # per head: K^T V (t * hd^2), Q (K^T V) (t * hd^2) and the normaliser Q . sum(K) (t * hd)
    mixing = 2 * t * d * hd + t * d
    kv = Cost(macs=mixing, dynamic_macs=mixing, activations=d * hd + 2 * t * d)
    return qkv + kv + linear_cost(t, d, d)


register(
    OpDef(
        name="linear_attention",
        sharing=Sharing(elastic=("head_dim", "feature_map"), chunks={"qkv.": (0, 3)}),
        kind="token_mixer",
        module=f"{_MODULE}:LinearAttention",
        family="M07",
        layout=LAYOUT_TOKENS,
        complexity="O(N d^2)",
        params=(
            HEAD_DIM,
            QKV_BIAS,
            ParamDef(
                "feature_map",
                str,
                "elu",
                choices=("elu", "relu"),
                doc="positive feature map of queries and keys: elu(x) + 1 or relu(x)",
            ),
            CAUSAL,
        ),
        rules=(divides("head_dim"), causal_needs_sequence),
        cost=_linear_attention_cost,
        causal=causal_flag(
            "prefix (recurrent) form: running sums of phi(k) v^T and phi(k), same MACs"
        ),
        doc="kernelized linear attention (Katharopoulos et al.): phi(Q) (phi(K)^T V), normalised",
        examples=(
            {"feature_map": "relu"},
            {"head_dim": 16, "qkv_bias": False},
            {"causal": True},
            {"causal": True, "feature_map": "relu"},
        ),
    )
)
