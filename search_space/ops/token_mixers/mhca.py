"""Next-ViT's multi-head convolutional attention, MHCA (catalog family M15).

"Next-ViT: Next Generation Vision Transformer for Efficient Deployment in Realistic Industrial
Scenarios": the token mixer of the Next Convolution Block (NCB) is a grouped 3x3 conv with one
group per head, batch norm, ReLU and a 1x1 projection, all convs without bias. In the NCB the MHCA
branch has no norm in front and the MLP branch a batch norm.

UniFormer's local MHRA needs no op of its own: it is ``sepconv`` with ``expansion`` 1.0, ``act``
identity, ``kernel`` 5 and ``bias`` true (1x1, depthwise 5x5, 1x1), after a ``dwconv`` position
block with norm ``none``.
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
    norm_cost,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing


def _mhca_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    d, grid = ctx.dim, ctx.grid
    heads = d // params["head_dim"]
    return (
        conv_cost(grid, d, d, params["kernel"], groups=heads, bias=False)
        + norm_cost("batchnorm", ctx.n * d, d)
        + conv_cost(grid, d, d, 1, bias=False)
    )


register(
    OpDef(
        name="mhca",
        sharing=Sharing(elastic=("kernel",)),
        kind="token_mixer",
        module="search_space.nn.mixers.mhca:MultiHeadConvAttention",
        family="M15",
        layout=LAYOUT_GRID,
        complexity="O(N d h_d k^2 + N d^2)",
        params=(
            ParamDef("head_dim", int, 32, minimum=1, doc="channels per head = per conv group"),
            ParamDef("kernel", int, 3, minimum=1, doc="grouped conv kernel (odd)"),
        ),
        rules=(odd("kernel"), divides("head_dim")),
        cost=_mhca_cost,
        examples=({"head_dim": 16, "kernel": 5},),
        doc="Next-ViT MHCA: grouped k x k conv (a group per head), BN, ReLU, 1x1; no biases",
    )
)
