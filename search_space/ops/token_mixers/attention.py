"""Attention token mixers (catalog families M01, M02, M05, M07)."""

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

_MODULE = "search_space.nn.mixers.attention"


def _attention_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    t, d = ctx.tokens, ctx.dim
    qkv = linear_cost(t, d, 3 * d, bias=params["qkv_bias"])
    # scores Q K^T and the weighted sum A V: each t * t * head_dim per head, d = heads * head_dim
    scores = Cost(macs=2 * t * t * d, dynamic_macs=2 * t * t * d,
                  activations=(d // params["head_dim"]) * t * t + t * d)
    return qkv + scores + linear_cost(t, d, d)


register(OpDef(
    name="attention", kind="token_mixer", module=f"{_MODULE}:Attention", family="M01",
    layout=LAYOUT_TOKENS, complexity="O(N^2 d + N d^2)",
    params=(
        ParamDef("head_dim", int, 32, minimum=1, doc="channels per head; heads = width / head_dim"),
        ParamDef("qkv_bias", bool, True),
    ),
    rules=(divides("head_dim"),), cost=_attention_cost,
    doc="global multi-head softmax self-attention (ViT, DeiT, CAFormer)",
))
