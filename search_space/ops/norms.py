"""Norm definitions. A block's norm normalises each token over channels (layer/RMS norm), over the
batch (batch norm), or over channels and all tokens of a sample (group norm with one group, the
PoolFormer choice)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import PER_TOKEN, Cost, OpContext, OpDef, norm_cost
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing

_MODULE = "search_space.nn.norms"


def _cost_of(kind: str):
    def cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
        return norm_cost(kind, ctx.tokens * ctx.dim, ctx.dim)

    return cost


for _name, _cls, _doc in (
    ("layernorm", "LayerNorm", "LayerNorm over channels of each token"),
    ("rmsnorm", "RMSNorm", "RMS norm over channels of each token"),
    ("batchnorm", "BatchNorm", "BatchNorm over the batch and tokens, per channel"),
    ("groupnorm", "GroupNorm1", "GroupNorm with one group: channels and tokens of a sample"),
    ("none", "NoNorm", "no normalisation"),
):
    register(
        OpDef(
            name=_name,
            sharing=Sharing(),
            kind="norm",
            params=(),
            module=f"{_MODULE}:{_cls}",
            cost=_cost_of(_name),
            # batch norm (batch statistics while training) and one-group norm (statistics over
            # all tokens) let later positions into earlier ones
            causal=PER_TOKEN if _name in ("layernorm", "rmsnorm", "none") else None,
            doc=_doc,
        )
    )

NORM_NAMES = ("layernorm", "rmsnorm", "batchnorm", "groupnorm", "none")
