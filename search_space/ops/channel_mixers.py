"""Channel mixers: the per-token feed-forward half of a block (seed catalog section (c))."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID_LAST,
    LAYOUT_TOKENS,
    PER_TOKEN,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    Rule,
    conv_cost,
    linear_cost,
)
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import Sharing

_MODULE = "search_space.nn.channel_mixers"

# Learnable parameters of each activation that has any (StarReLU's scale and bias).
_ACTIVATION_PARAMS = {"star_relu": 2}


def activation_params(act: str) -> int:
    """Learnable parameters of one activation module of the given registry name."""
    return _ACTIVATION_PARAMS.get(act, 0)


def hidden_width(dim: int, ratio: float) -> int:
    """Hidden width of a feed-forward layer with expansion ``ratio`` (timm's int truncation)."""
    return max(1, int(dim * ratio))


def odd(param: str) -> Rule:
    """Rule: ``params[param]`` is odd, so a stride-1 window with padding k // 2 keeps the grid."""

    def rule(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
        value = params[param]
        return None if value % 2 else f"{param}={value} must be odd to keep the grid size"

    return rule


def _mlp_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    h = hidden_width(ctx.dim, params["ratio"])
    return (
        linear_cost(ctx.tokens, ctx.dim, h, params["bias"])
        + linear_cost(ctx.tokens, h, ctx.dim, params["bias"])
        + Cost(params=activation_params(params["act"]))
    )


register(
    OpDef(
        name="mlp",
        sharing=Sharing(elastic=("ratio",)),
        kind="channel_mixer",
        module=f"{_MODULE}:Mlp",
        causal=PER_TOKEN,
        layout=LAYOUT_TOKENS,
        complexity="O(N d^2)",
        params=(
            ParamDef("ratio", float, 4.0, minimum=0.0625, doc="hidden width / width"),
            ParamDef("act", str, "gelu", choices=ACTIVATIONS),
            ParamDef("bias", bool, True),
        ),
        cost=_mlp_cost,
        doc="two linear layers with an activation (ViT MLP)",
        examples=({"act": "star_relu", "bias": False},),
    )
)


# -- glu -------------------------------------------------------------------------------------------


def _glu_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    h = hidden_width(ctx.dim, params["ratio"])
    # one fc1 producing value and gate (2h), elementwise gating (free), fc2 back
    return (
        linear_cost(ctx.tokens, ctx.dim, 2 * h, params["bias"])
        + linear_cost(ctx.tokens, h, ctx.dim, params["bias"])
        + Cost(params=activation_params(params["act"]), activations=ctx.tokens * h)
    )


register(
    OpDef(
        name="glu",
        sharing=Sharing(elastic=("ratio",), chunks={"fc1.": (0, 2)}),
        kind="channel_mixer",
        module=f"{_MODULE}:GluMlp",
        causal=PER_TOKEN,
        layout=LAYOUT_TOKENS,
        complexity="O(N d^2)",
        params=(
            # 8/3 keeps the parameters of a ratio-4 MLP: 3 d h = 2 d (4d) when h = 8d/3.
            ParamDef(
                "ratio", float, 8 / 3, minimum=0.0625, doc="hidden width / width (per branch)"
            ),
            ParamDef("act", str, "silu", choices=ACTIVATIONS, doc="gate activation (silu: SwiGLU)"),
            ParamDef("bias", bool, True),
        ),
        cost=_glu_cost,
        examples=({"ratio": 2.0, "act": "gelu", "bias": False},),
        doc="gated linear unit feed-forward: fc2(act(gate) * value) (SwiGLU, GeGLU)",
    )
)


# -- conv_ffn --------------------------------------------------------------------------------------


def _conv_ffn_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    # grid_last layout: only the N grid tokens are transformed (prefix tokens get a zero update)
    n, d, bias = ctx.n, ctx.dim, params["bias"]
    h = hidden_width(d, params["ratio"])
    return (
        linear_cost(n, d, h, bias)
        + conv_cost(ctx.grid, h, h, params["kernel"], groups=h, bias=bias)
        + Cost(params=activation_params(params["act"]))
        + linear_cost(n, h, d, bias)
    )


register(
    OpDef(
        name="conv_ffn",
        sharing=Sharing(elastic=("ratio", "kernel")),
        kind="channel_mixer",
        module=f"{_MODULE}:ConvFfn",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N d^2 + N d k^2)",
        params=(
            ParamDef("ratio", float, 4.0, minimum=0.0625, doc="hidden width / width"),
            ParamDef("act", str, "gelu", choices=ACTIVATIONS),
            ParamDef("kernel", int, 3, minimum=1, doc="depthwise conv kernel (odd)"),
            ParamDef("bias", bool, True, doc="biases of fc1, the depthwise conv and fc2"),
        ),
        rules=(odd("kernel"),),
        cost=_conv_ffn_cost,
        examples=({"kernel": 5, "act": "star_relu"}, {"ratio": 2.0, "bias": False}),
        doc="fc1, depthwise conv on the grid, act, fc2 (PVTv2, LITv2); prefix tokens unchanged",
    )
)

register(
    OpDef(
        name="none",
        sharing=Sharing(),
        kind="channel_mixer",
        module=f"{_MODULE}:NoChannelMixer",
        causal=PER_TOKEN,
        params=(),
        cost=lambda ctx, params: Cost(),
        doc="no channel mixer: the block has one residual branch",
    )
)
