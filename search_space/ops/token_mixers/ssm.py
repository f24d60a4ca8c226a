"""Selective state-space token mixer (catalog family M19): a Mamba block over the grid tokens."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_SEQUENCE,
    Causal,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    linear_cost,
)
from search_space.ops.registries import register
from search_space.ops.sharing import WIDTH, Sharing


def ssm_dt_rank(dim: int, dt_rank: int) -> int:
    """Rank of the step-size projection; 0 picks Mamba's ceil(d / 16)."""
    return dt_rank or math.ceil(dim / 16)


def _ssm_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d, s = ctx.n, ctx.dim, params["state"]
    e = params["expand"] * d
    r = ssm_dt_rank(d, params["dt_rank"])
    # per direction: causal depthwise conv1d, x_proj, dt_proj, A_log and D, then the (n, e, s)
    # discretisation (elementwise, free), the scan (1 MAC per state element) and y = C . h
    scan = 2 * n * e * s
    direction = (
        conv_cost((n,), e, e, params["conv_kernel"], groups=e)
        + linear_cost(n, e, r + 2 * s, bias=False)
        + linear_cost(n, r, e)
        + Cost(params=e * s + e, macs=scan, dynamic_macs=scan, activations=3 * n * e * s)
    )
    # in_proj and out_proj are shared; each direction has its own conv and SSM parameters
    cost = linear_cost(n, d, 2 * e, bias=False) + linear_cost(n, e, d, bias=False)
    for _ in range(2 if params["bidirectional"] else 1):
        cost += direction
    return cost


register(
    OpDef(
        name="selective_ssm",
        sharing=Sharing(
            keyed_by=(WIDTH,), note="x_proj packs [dt; B; C] with a dt rank that follows the width"
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.ssm:SelectiveSSM",
        family="M19",
        layout=LAYOUT_SEQUENCE,
        complexity="O(N d^2 + N d S)",
        params=(
            ParamDef("state", int, 16, minimum=1, doc="state size S per channel"),
            ParamDef("expand", int, 2, minimum=1, doc="inner width E = expand * width"),
            ParamDef("conv_kernel", int, 4, minimum=1, doc="causal depthwise conv1d kernel"),
            ParamDef("dt_rank", int, 0, minimum=0, doc="step-size projection rank; 0: ceil(d/16)"),
            ParamDef(
                "bidirectional",
                bool,
                False,
                doc="also scan the reversed sequence with its own conv/SSM parameters (Vim)",
            ),
        ),
        cost=_ssm_cost,
        causal=Causal(
            when=(("bidirectional", False),),
            how="forward scan with a left-padded conv1d: causal unless bidirectional",
        ),
        examples=(
            {"state": 8, "expand": 1},
            {"bidirectional": True, "dt_rank": 4, "conv_kernel": 3},
        ),
        doc="Mamba selective scan over the row-major grid tokens (Mamba, Vim when bidirectional)",
    )
)
