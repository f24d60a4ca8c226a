"""CAS-ViT's convolutional additive token mixer (catalog family M08) and its local integration.

"CAS-ViT: Convolutional Additive Self-attention Vision Transformers for Efficient Mobile
Applications". A CAS-ViT block is ``x + local(x)``, then ``x + attn(BN(x))``, then
``x + mlp(BN(x))``: in mixnas two blocks, one with norm ``none``, token mixer
``local_integration`` and no channel mixer, one with norm ``batchnorm``, token mixer
``additive_attention`` and channel mixer ``mlp``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    norm_cost,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.norms import NORM_NAMES
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import Sharing

KERNEL = ParamDef("kernel", int, 3, minimum=1, doc="depthwise kernels (odd; CAS-ViT: 3)")


def _gate_cost(grid: tuple[int, ...], d: int, kernel: int) -> Cost:
    """Spatial then channel operation on one of q, k.

    Spatial: depthwise k^r conv (bias), BN, ReLU, 1x1 conv to one channel (no bias), sigmoid gate.
    Channel: global average pool (1 MAC per element, fvcore's adaptive pooling rate), 1x1 conv
    d -> d on the pooled vector (no bias), sigmoid gate. Gating products are free.
    """
    n = math.prod(grid)
    return (
        conv_cost(grid, d, d, kernel, groups=d)
        + norm_cost("batchnorm", n * d, d)
        + conv_cost(grid, d, 1, 1, bias=False)
        + Cost(macs=n * d)
        + conv_cost((1,), d, d, 1, bias=False)
    )


def _additive_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid, d, k = ctx.grid, ctx.dim, params["kernel"]
    qkv = conv_cost(grid, d, 3 * d, 1, bias=params["qkv_bias"])
    dw = conv_cost(grid, d, d, k, groups=d)
    return qkv + _gate_cost(grid, d, k) + _gate_cost(grid, d, k) + dw + dw


register(
    OpDef(
        name="additive_attention",
        sharing=Sharing(elastic=("kernel",), chunks={"qkv.": (0, 3)}),
        kind="token_mixer",
        module="search_space.nn.mixers.additive:AdditiveTokenMixer",
        family="M08",
        layout=LAYOUT_GRID,
        complexity="O(N d^2 + N d k^2)",
        params=(KERNEL, ParamDef("qkv_bias", bool, False, doc="bias of the 1x1 q/k/v conv")),
        rules=(odd("kernel"),),
        cost=_additive_cost,
        examples=({"kernel": 5, "qkv_bias": True},),
        doc="CAS-ViT additive attention: proj(dwconv(spatial/channel-gated q + k) * v), no N x N",
    )
)


def _local_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid, d = ctx.grid, ctx.dim
    mid = round(params["ratio"] * d)
    return (
        conv_cost(grid, d, mid, 1)
        + norm_cost(params["norm"], ctx.n * mid, mid)
        + conv_cost(grid, mid, mid, params["kernel"], groups=mid)
        + conv_cost(grid, mid, d, 1)
    )


register(
    OpDef(
        name="local_integration",
        sharing=Sharing(elastic=("ratio", "kernel")),
        kind="token_mixer",
        module="search_space.nn.mixers.additive:LocalIntegration",
        family="M15",
        layout=LAYOUT_GRID,
        complexity="O(N d^2 + N d k^2)",
        params=(
            ParamDef("ratio", float, 1.0, minimum=0.0625, doc="hidden width / width"),
            KERNEL,
            ParamDef("act", str, "gelu", choices=ACTIVATIONS, doc="after the depthwise conv"),
            ParamDef("norm", str, "batchnorm", choices=NORM_NAMES, doc="after the first 1x1"),
        ),
        rules=(odd("kernel"),),
        cost=_local_cost,
        examples=({"ratio": 2.0, "act": "relu", "norm": "layernorm", "kernel": 5},),
        doc="CAS-ViT local integration: 1x1, norm, depthwise conv, act, 1x1 (use with norm none)",
    )
)
