"""NAS-Bench-201's reduction block, the ResNet basic block with stride 2, as a downsampler.

``out = shortcut(x) + conv_b(conv_a(x))`` with ``conv_a`` = ReLU, 3x3 conv stride 2 (no bias), BN;
``conv_b`` = ReLU, 3x3 conv (no bias), BN; ``shortcut`` = 2x2 average pooling stride 2, then a 1x1
conv (no bias). Odd grid sizes pool in ceil mode, so both paths give ceil(g / 2) cells (on the even
grids of NAS-Bench-201 that is exactly its ``AvgPool2d(2, 2)``). Prefix (class) tokens pass
through a linear projection when the width changes, like every downsampler.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import Cost, OpContext, OpDef, conv_cost, conv_out, linear_cost
from search_space.ops.base import norm_cost as _norm
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing


def _half_grid(ctx: OpContext, params: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(conv_out(g, 3, 2, 1) for g in ctx.grid)


def _resnet_basic_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    grid = _half_grid(ctx, params)
    n = math.prod(grid)
    c_in, c_out = ctx.dim, ctx.out_dim
    # conv_a and conv_b: ReLU (one output), conv without bias, affine batch norm
    cost = Cost(activations=ctx.n * c_in) + conv_cost(grid, c_in, c_out, 3, bias=False)
    cost += _norm("batchnorm", n * c_out, c_out)
    cost += Cost(activations=n * c_out) + conv_cost(grid, c_out, c_out, 3, bias=False)
    cost += _norm("batchnorm", n * c_out, c_out)
    # shortcut: average pooling (free) then a 1x1 conv without bias; the sum writes the output
    cost += Cost(activations=n * c_in) + conv_cost(grid, c_in, c_out, 1, bias=False)
    cost += Cost(activations=n * c_out)
    if ctx.prefix and c_in != c_out:
        cost += linear_cost(ctx.prefix, c_in, c_out)
    return cost


register(
    OpDef(
        name="resnet_basic",
        sharing=Sharing(),
        kind="downsample",
        module="search_space.nn.nb201:ResNetBasic",
        params=(),
        cost=_resnet_basic_cost,
        out_grid=_half_grid,
        doc="ResNet basic block, stride 2: ReLU-conv3x3-BN twice + avgpool-conv1x1 shortcut "
        "(NAS-Bench-201 reduction)",
    )
)
