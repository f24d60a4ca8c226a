"""Convolutional token mixers: depthwise conv (M15), MetaFormer SepConv (M15) and VAN's
large-kernel attention (M16). All work on 1-D and 2-D grids; kernels are square (k^r weights
on a rank-r grid)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID,
    LAYOUT_GRID_LAST,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    linear_cost,
)
from search_space.ops.causal import CAUSAL, causal_flag, causal_needs_sequence
from search_space.ops.channel_mixers import activation_params, hidden_width, odd
from search_space.ops.large_kernel import REPARAM_CHOICES, reparam_cost, reparam_rule
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import Sharing

_MODULE = "search_space.nn.mixers.conv"

# a causal conv pads k - 1 cells on the left instead of k // 2 on both sides: the same output
# length, weights and MACs
_CAUSAL_CONV = causal_flag("left padding by k - 1: position t sees t - k + 1 .. t")


def _causal_plain_conv(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if params.get("causal") and params["reparam"] != "none":
        return "causal=true needs reparam 'none' (the parallel branches are centred)"
    return None


# -- dwconv ----------------------------------------------------------------------------------------


def _dwconv_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    if params["reparam"] != "none":
        return reparam_cost(ctx, params)
    return conv_cost(
        ctx.grid, ctx.dim, ctx.dim, params["kernel"], groups=ctx.dim, bias=params["bias"]
    )


register(
    OpDef(
        name="dwconv",
        sharing=Sharing(elastic=("kernel",)),
        kind="token_mixer",
        module=f"{_MODULE}:DwConv",
        family="M15",
        layout=LAYOUT_GRID,
        complexity="O(N d k^2)",
        params=(
            ParamDef("kernel", int, 7, minimum=1, doc="kernel size (odd)"),
            ParamDef("bias", bool, True),
            ParamDef(
                "reparam",
                str,
                "none",
                choices=REPARAM_CHOICES,
                doc="training-time branches + BNs: RepLKNet small kernel, UniRepLKNet dilated",
            ),
            ParamDef("small_kernel", int, 5, minimum=1, doc="RepLKNet's parallel kernel (small)"),
            CAUSAL,
        ),
        rules=(odd("kernel"), reparam_rule, causal_needs_sequence, _causal_plain_conv),
        cost=_dwconv_cost,
        causal=_CAUSAL_CONV,
        examples=(
            {"kernel": 3, "causal": True},
            {"kernel": 3},
            {"kernel": 5, "bias": False},
            {"kernel": 13, "bias": False, "reparam": "dilated"},
            {"kernel": 9, "bias": False, "reparam": "small", "small_kernel": 3},
        ),
        doc="depthwise k x k conv (ConvNeXt); optional RepLKNet/UniRepLKNet training branches",
    )
)


# -- sepconv ---------------------------------------------------------------------------------------


def _sepconv_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d, bias = ctx.n, ctx.dim, params["bias"]
    h = hidden_width(d, params["expansion"])
    return (
        linear_cost(n, d, h, bias)
        + Cost(params=activation_params(params["act"]))
        + conv_cost(ctx.grid, h, h, params["kernel"], groups=h, bias=bias)
        + linear_cost(n, h, d, bias)
    )


register(
    OpDef(
        name="sepconv",
        sharing=Sharing(elastic=("kernel", "expansion")),
        kind="token_mixer",
        module=f"{_MODULE}:SepConv",
        family="M15",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N d^2 + N d k^2)",
        params=(
            ParamDef("expansion", float, 2.0, minimum=0.0625, doc="hidden channels / width"),
            ParamDef("act", str, "star_relu", choices=ACTIVATIONS, doc="after the first pointwise"),
            ParamDef("kernel", int, 7, minimum=1, doc="depthwise kernel size (odd)"),
            ParamDef("bias", bool, False, doc="biases of all three layers (MetaFormer: none)"),
            CAUSAL,
        ),
        rules=(odd("kernel"), causal_needs_sequence),
        cost=_sepconv_cost,
        causal=_CAUSAL_CONV,
        examples=(
            {"kernel": 3, "act": "gelu"},
            {"expansion": 1.0, "bias": True},
            {"kernel": 5, "causal": True},
        ),
        doc="pointwise expand, act, depthwise k x k, pointwise (MetaFormer ConvFormer SepConv)",
    )
)


# -- lka -------------------------------------------------------------------------------------------

LKA_KERNELS = (7, 14, 21, 28, 35)


def lka_decomposition(kernel: int) -> tuple[int, int, int]:
    """``(local, dilated, dilation)`` kernels VAN's decomposition uses for an effective ``kernel``.

    VAN splits a K x K conv into a (2d-1) x (2d-1) depthwise conv and a ceil(K/d) x ceil(K/d)
    depthwise conv with dilation d; with K = 21 and d = 3 that is 5x5 then 7x7 dilated by 3. mixnas
    keeps the dilated kernel at 7 and scales the dilation, d = K / 7 (so K is a multiple of 7).
    For K = 7 (d = 1) the local conv would be 1x1, a per-channel scale, and is left out (local 0).
    """
    dilation = kernel // 7
    local = 2 * dilation - 1
    return (local if local > 1 else 0), 7, dilation


def _lka_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    d, grid = ctx.dim, ctx.grid
    local, dilated, _ = lka_decomposition(params["kernel"])
    pointwise = conv_cost(grid, d, d, 1)
    cost = pointwise  # proj_1
    if local:
        cost += conv_cost(grid, d, d, local, groups=d)
    cost += conv_cost(grid, d, d, dilated, groups=d)
    return cost + pointwise + pointwise  # LKA's 1x1 conv, proj_2


register(
    OpDef(
        name="lka",
        sharing=Sharing(note="the kernel sets the decomposition (depthwise, dilated depthwise)"),
        kind="token_mixer",
        module=f"{_MODULE}:LargeKernelAttention",
        family="M16",
        layout=LAYOUT_GRID,
        complexity="O(N d^2)",
        params=(
            ParamDef(
                "kernel",
                int,
                21,
                choices=LKA_KERNELS,
                doc="effective kernel K: (2d-1) local dw conv + 7 dw conv dilated d = K/7",
            ),
            CAUSAL,
        ),
        rules=(causal_needs_sequence,),
        cost=_lka_cost,
        causal=causal_flag(
            "both depthwise convs pad on the left (k - 1, and dilation x (7 - 1) cells)"
        ),
        examples=({"kernel": 7}, {"kernel": 14}, {"kernel": 21, "causal": True}),
        doc="VAN large-kernel attention: 1x1, GELU, x * (dw, dilated dw, 1x1)(x), 1x1, + input",
    )
)
