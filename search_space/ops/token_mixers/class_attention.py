"""Class attention (catalog family M20: a small query set, here the class tokens, reads all
tokens): Touvron et al., "Going deeper with Image Transformers" (CaiT, 2021), also VOLO's and
SpectFormer-H's post-network blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_TOKENS,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    divides,
    linear_cost,
)
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing
from search_space.ops.token_mixers.attention import HEAD_DIM


def _class_attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    p, t, d, bias = ctx.prefix, ctx.tokens, ctx.dim, params["qkv_bias"]
    # queries from the P class tokens only; keys and values from all T tokens
    cost = linear_cost(p, d, d, bias=bias) + linear_cost(t, d, 2 * d, bias=bias)
    # Q K^T and A V: P x T scores per head, head_dim each, d = heads * head_dim
    scores = Cost(
        macs=2 * p * t * d,
        dynamic_macs=2 * p * t * d,
        activations=(d // params["head_dim"]) * p * t + p * d,
    )
    # the projection runs on the class tokens only; grid tokens get a zero update
    return cost + scores + linear_cost(p, d, d) + Cost(activations=ctx.n * d)


def _needs_class_token(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if ctx.prefix < 1:
        return (
            "needs prefix (class) tokens to query with: a stem with cls_token, or an 'embed' "
            "downsampler before the block"
        )
    return None


register(
    OpDef(
        name="class_attention",
        sharing=Sharing(elastic=("head_dim",), chunks={"kv.": (0, 2)}),
        kind="token_mixer",
        module="search_space.nn.mixers.class_attention:ClassAttention",
        family="M20",
        layout=LAYOUT_TOKENS,
        complexity="O(P N d + N d^2)",
        params=(
            HEAD_DIM,
            ParamDef(
                "qkv_bias",
                bool,
                True,
                doc="bias of the q and kv projections (CaiT, SpectFormer: yes; VOLO: no)",
            ),
        ),
        rules=(divides("head_dim"), _needs_class_token),
        cost=_class_attention_cost,
        doc="CaiT class attention: the class tokens query all tokens; grid tokens are not "
        "updated (blocks with tokens: prefix)",
        examples=({"qkv_bias": False, "head_dim": 16},),
    )
)
