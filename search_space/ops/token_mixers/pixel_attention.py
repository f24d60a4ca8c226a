"""PAN's self-calibrated convolution with pixel attention (SC-PA) as a token mixer (family M23).

Zhao et al., "Efficient Image Super-Resolution Using Pixel Attention" (2020): the input is split
by two 1x1 convs into two half-width branches (LeakyReLU after each); one applies a k x k conv, the
other a pixel-attention conv (``conv_k(conv_k(b) * sigmoid(conv1x1(b)))``); both pass a LeakyReLU,
are concatenated and merged by a 1x1 conv. The block's residual adds the input, so a PAN block is
norm ``none``, token mixer ``scpa`` and channel mixer ``none``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    divides,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing


def _scpa_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid, d, k = ctx.grid, ctx.dim, params["kernel"]
    g = d // params["reduction"]
    split = conv_cost(grid, d, g, 1, bias=False)  # each branch's projection
    branch_conv = conv_cost(grid, g, g, k, bias=False)  # plain: 1, attention: 2
    return (
        split
        + split
        + branch_conv
        + conv_cost(grid, g, g, 1)  # the attention map
        + branch_conv
        + branch_conv
        + conv_cost(grid, 2 * g, d, 1, bias=False)  # the merge
    )


register(
    OpDef(
        name="scpa",
        sharing=Sharing(
            elastic=("kernel",),
            chunks={"merge": (1, 2)},
            note="the merge reads [plain; attention] halves, cut alike",
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.pixel_attention:SelfCalibratedPixelAttention",
        family="M23",
        layout=LAYOUT_GRID,
        complexity="O(N d^2 + N d^2 k^2 / r^2)",
        params=(
            ParamDef("reduction", int, 2, minimum=1, doc="width / each branch's width"),
            ParamDef("kernel", int, 3, minimum=1, doc="the branches' conv kernel (odd)"),
        ),
        rules=(odd("kernel"), divides("reduction")),
        cost=_scpa_cost,
        spatial_dims=(2,),
        examples=({"kernel": 5}, {"reduction": 4}),
        doc="PAN's self-calibrated conv with pixel attention (SC-PA), super-resolution",
    )
)
