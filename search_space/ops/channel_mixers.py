"""Channel mixers: the per-token feed-forward half of a block (seed catalog section (c))."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import LAYOUT_TOKENS, Cost, OpContext, OpDef, ParamDef, linear_cost
from search_space.ops.registries import ACTIVATIONS, register

_MODULE = "search_space.nn.channel_mixers"


def hidden_width(dim: int, ratio: float) -> int:
    """Hidden width of a feed-forward layer with expansion ``ratio`` (timm's int truncation)."""
    return max(1, int(dim * ratio))


def _mlp_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    h = hidden_width(ctx.dim, params["ratio"])
    return linear_cost(ctx.tokens, ctx.dim, h, params["bias"]) + linear_cost(
        ctx.tokens, h, ctx.dim, params["bias"]
    )


register(OpDef(
    name="mlp", kind="channel_mixer", module=f"{_MODULE}:Mlp", layout=LAYOUT_TOKENS,
    complexity="O(N d^2)",
    params=(
        ParamDef("ratio", float, 4.0, minimum=0.0625, doc="hidden width / width"),
        ParamDef("act", str, "gelu", choices=ACTIVATIONS),
        ParamDef("bias", bool, True),
    ),
    cost=_mlp_cost, doc="two linear layers with an activation (ViT MLP)",
))

register(OpDef(
    name="none", kind="channel_mixer", module=f"{_MODULE}:NoChannelMixer", params=(),
    cost=lambda ctx, params: Cost(), doc="no channel mixer: the block has one residual branch",
))
