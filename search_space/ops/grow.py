"""Growing by concatenation: a downsampler-registry entry that keeps the grid and every input
channel and appends ``out - in`` channels projected from them (Next-ViT's NTB: the MHCA branch's
channels are a 1x1 projection of the E-MHSA output, concatenated to it; DenseNet transitions).
Prefix (class) tokens get the same projection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import Cost, OpContext, OpDef, ParamDef, linear_cost, norm_cost
from search_space.ops.norms import NORM_NAMES
from search_space.ops.registries import register
from search_space.ops.sharing import WIDTH, Sharing


def _grows(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if ctx.out_dim <= ctx.dim:
        return f"appends channels, so the width must grow (from {ctx.dim} to {ctx.out_dim})"
    return None


def _grow_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    extra = ctx.out_dim - ctx.dim
    cost = linear_cost(ctx.tokens, ctx.dim, extra, bias=params["norm"] == "none")
    return cost + norm_cost(params["norm"], ctx.tokens * extra, extra)


register(
    OpDef(
        name="grow",
        sharing=Sharing(keyed_by=(WIDTH,), note="appends out - in new channels after its input"),
        kind="downsample",
        module="search_space.nn.grow:GrowConcat",
        params=(
            ParamDef("norm", str, "batchnorm", choices=NORM_NAMES, doc="after the projection"),
        ),
        cost=_grow_cost,
        rules=(_grows,),
        doc="keep the grid and the input channels, append a 1x1 projection to the new width",
    )
)
