"""MBConv, the inverted residual of MobileNetV2 / EfficientNet as MaxViT uses it (family M15).

The token mixer is the block body only: the MetaFormer block around it supplies MaxViT's
``pre_norm`` (name ``batchnorm`` as the block norm) and the shortcut. The strided form that opens
a MaxViT stage, with its pooled shortcut, is the ``mbconv`` downsampler
(`search_space.ops.mobile_downsample`).
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


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds a channel count to a multiple of ``divisor``, never more than 10% below ``value``.

    The rule of the MobileNet/EfficientNet reference code (timm ``make_divisible``), which MaxViT
    uses for the MBConv hidden width, so mixnas's widths and parameter counts match timm's.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mbconv_hidden(dim: int, expand: float) -> int:
    return make_divisible(dim * expand)


def se_width(dim: int, se_ratio: float) -> int:
    """Squeeze width: ``int(se_ratio * dim)`` of the block's (output) width, as in MaxViT and
    EfficientNet (not of the expanded width); 0 means no squeeze-excite."""
    return int(se_ratio * dim) if se_ratio > 0 else 0


def se_cost(channels: int, reduced: int) -> Cost:
    """Squeeze-excite on ``channels``: mean over the grid, 1x1 conv to ``reduced``, act, 1x1
    back, sigmoid gate. Both convs have biases and run on one pooled vector; the mean is an
    ``aten::mean`` fvcore does not count (timm's published MACs leave it out too)."""
    if not reduced:
        return Cost()
    return conv_cost((1,), channels, reduced, 1) + conv_cost((1,), reduced, channels, 1)


def mbconv_body_cost(
    grid_in: tuple[int, ...],
    grid_out: tuple[int, ...],
    c_in: int,
    c_out: int,
    params: Mapping[str, Any],
) -> Cost:
    """1x1 expand (no bias), norm + act, k x k depthwise (stride maps grid_in to grid_out, no
    bias), norm + act, squeeze-excite, 1x1 project (bias, or no bias + norm with out_norm)."""
    mid = mbconv_hidden(c_out, params["expand"])
    n_in, n_out, norm = math.prod(grid_in), math.prod(grid_out), params["norm"]
    out_norm = params["out_norm"]
    return (
        conv_cost(grid_in, c_in, mid, 1, bias=False)
        + norm_cost(norm, n_in * mid, mid)
        + conv_cost(grid_out, mid, mid, params["kernel"], groups=mid, bias=False)
        + norm_cost(norm, n_out * mid, mid)
        + se_cost(mid, se_width(c_out, params["se_ratio"]))
        + conv_cost(grid_out, mid, c_out, 1, bias=not out_norm)
        + (norm_cost(norm, n_out * c_out, c_out) if out_norm else Cost())
    )


MBCONV_PARAMS = (
    ParamDef(
        "expand", float, 4.0, minimum=0.0625, doc="hidden width / width (rounded to 8, timm rule)"
    ),
    ParamDef("kernel", int, 3, minimum=1, doc="depthwise kernel (odd)"),
    ParamDef("se_ratio", float, 0.25, minimum=0.0, doc="squeeze width / block width; 0: no SE"),
    ParamDef(
        "act", str, "gelu", choices=ACTIVATIONS, doc="after the inner norms (EfficientNet: silu)"
    ),
    ParamDef("se_act", str, "silu", choices=ACTIVATIONS, doc="inside the squeeze-excite"),
    ParamDef("norm", str, "batchnorm", choices=NORM_NAMES, doc="after expand and depthwise conv"),
    ParamDef(
        "out_norm",
        bool,
        False,
        doc="project without bias, then norm (MobileNetV2/EfficientNet); MaxViT: bias, no norm",
    ),
)


def _mbconv_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    return mbconv_body_cost(ctx.grid, ctx.grid, ctx.dim, ctx.dim, params)


register(
    OpDef(
        name="mbconv",
        sharing=Sharing(elastic=("expand", "kernel", "se_ratio")),
        kind="token_mixer",
        module="search_space.nn.mixers.mbconv:MBConv",
        family="M15",
        layout=LAYOUT_GRID,
        complexity="O(N d^2 e + N d e k^2)",
        params=MBCONV_PARAMS,
        rules=(odd("kernel"),),
        cost=_mbconv_cost,
        examples=(
            {"se_ratio": 0.0, "expand": 2.0, "kernel": 5},
            {"act": "silu", "out_norm": True, "norm": "layernorm"},
        ),
        doc="inverted residual: 1x1 expand, norm/act, k x k depthwise, norm/act, SE, 1x1 (MaxViT)",
    )
)
