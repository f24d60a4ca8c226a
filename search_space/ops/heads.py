"""Heads: from the last stage's tokens to class logits, or to next-token logits per position."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from search_space.errors import SpaceError
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


# -- causal language-model head --------------------------------------------------------------------


def _lm_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    # the prefix (class) tokens are dropped first: norm and logits for the n grid positions only
    n, d, vocab = ctx.n, ctx.dim, ctx.num_classes
    logits = linear_cost(n, d, vocab, bias=params["bias"])
    if params["tie"]:  # the weight is the token embedding's, counted there
        logits = Cost(
            params=logits.params - d * vocab, macs=logits.macs, activations=logits.activations
        )
    return norm_cost(params["norm"], n * d, d) + logits


def check_tied_head(ops: Sequence[Any]) -> None:
    """A head with ``tie: true`` reuses the token embedding's table as its weight: the stem must
    be ``token_embed`` with the head's width and a vocabulary of the head's outputs.

    ``ops`` are the `search_space.plan.PlannedOp` items of a spec, the stem first, the head last.
    """
    stem, head = ops[0], ops[-1]
    if head.op is None or not head.params.get("tie"):
        return
    if stem.op is None or stem.op.name != "token_embed":
        name = stem.op.name if stem.op is not None else None
        raise SpaceError(
            "head.params.tie",
            "ties the logits to the token embedding; allowed: the 'token_embed' stem "
            f"(got {name!r})",
            value=True,
        )
    if (stem.ctx.out_dim, stem.ctx.dim) != (head.ctx.dim, head.ctx.num_classes):
        raise SpaceError(
            "head.params.tie",
            f"the embedding is {stem.ctx.dim} ids x {stem.ctx.out_dim} channels but the head "
            f"maps {head.ctx.dim} channels to {head.ctx.num_classes} outputs; allowed: the last "
            "stage's width equal to the first's and input.num_classes equal to the vocab_size",
            value=True,
        )


register(
    OpDef(
        name="lm_head",
        sharing=Sharing(),
        kind="head",
        module="search_space.nn.heads:LMHead",
        params=(
            ParamDef("norm", str, "layernorm", choices=NORM_NAMES, doc="final norm per token"),
            ParamDef(
                "tie",
                bool,
                False,
                doc="reuse the token embedding's table as the output weight (GPT-2)",
            ),
            ParamDef("bias", bool, False, doc="a bias on the logits"),
        ),
        cost=_lm_cost,
        spatial_dims=(1,),
        examples=({"tie": True}, {"bias": True, "norm": "rmsnorm"}, {"tie": True, "bias": True}),
        needs_causal=True,
        output="token",
        doc="causal LM head: norm, then next-token logits (B, L, vocab) at every position",
    )
)
