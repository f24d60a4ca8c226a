"""Heads: from the last stage's tokens to class logits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import Cost, OpContext, OpDef, ParamDef, linear_cost, norm_cost
from search_space.ops.norms import NORM_NAMES
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import Sharing


def _cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    elements = ctx.tokens * ctx.dim if params["norm_position"] == "pre_pool" else ctx.dim
    cost = norm_cost(params["norm"], elements, ctx.dim)
    width = ctx.dim
    if params["hidden"]:
        cost += linear_cost(1, width, params["hidden"])
        width = params["hidden"]
    cost += linear_cost(1, width, ctx.num_classes)
    if params["distill"]:  # a second classifier whose logits are averaged in (DeiT's dist head)
        cost += linear_cost(1, width, ctx.num_classes)
    if params["token_label"]:  # a classifier on every grid token; the max over tokens is free
        cost += linear_cost(ctx.n, ctx.dim, ctx.num_classes)
    return cost


def _cls_needs_prefix(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    if params["pool"] == "cls" and ctx.prefix < 1:
        return (
            "pool='cls' needs a class token (stem parameter cls_token: true, or an 'embed' "
            "downsampler)"
        )
    return None


register(
    OpDef(
        name="classifier",
        sharing=Sharing(),
        kind="head",
        module="search_space.nn.heads:Classifier",
        params=(
            ParamDef(
                "pool",
                str,
                "gap",
                choices=("gap", "cls"),
                doc="global average of grid tokens, or the class token",
            ),
            ParamDef("norm", str, "layernorm", choices=NORM_NAMES),
            ParamDef(
                "norm_position",
                str,
                "post_pool",
                choices=("pre_pool", "post_pool"),
                doc="norm all tokens before pooling (ViT, Swin) or the pooled vector (ConvNeXt)",
            ),
            ParamDef(
                "act",
                str,
                "identity",
                choices=ACTIVATIONS,
                doc="activation after the norm (NAS-Bench-201: relu)",
            ),
            ParamDef("hidden", int, 0, minimum=0, doc="pre-logits layer width; 0 for none"),
            ParamDef("hidden_act", str, "tanh", choices=ACTIVATIONS),
            ParamDef(
                "distill",
                bool,
                False,
                doc="add a distillation classifier, averaged at inference (DeiT, LeViT)",
            ),
            ParamDef(
                "token_label",
                bool,
                False,
                doc="add a token-labelling classifier on the grid tokens: logits + 0.5 * its "
                "max over tokens (VOLO, SpectFormer-H, LV-ViT)",
            ),
        ),
        cost=_cost,
        rules=(_cls_needs_prefix,),
        doc="pool, norm, optional pre-logits layer, linear classifier",
    )
)
