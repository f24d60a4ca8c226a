"""Torch-free definitions of the structural pieces a spec can name besides registered ops.

Skip merges (U-Net), latent tokens and their read/write cross-attention (FIT) and nested
feed-forward layers (MatFormer) are not extension points: the spec's own fields (`Skip`,
`Latents`, ``Block.nested_ratio``) call for them, and `search_space.plan` places them. They are
`OpDef`s all the same, so analytic costs, op signatures and the builder treat them like any op.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_TOKENS,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    linear_cost,
    norm_cost,
)
from search_space.ops.channel_mixers import activation_params, hidden_width
from search_space.ops.registries import ACTIVATIONS
from search_space.ops.sharing import GRID, WIDTH, Sharing

_MODULE = "search_space.nn.structure"


# -- U-Net skip merge --------------------------------------------------------------------------


def _merge_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    if params["merge"] == "add":
        return Cost()
    # concatenate channels, then a linear layer back to the width
    return linear_cost(ctx.tokens, ctx.dim + params["source_dim"], ctx.dim)


SKIP_MERGE = OpDef(
    name="skip_merge",
    sharing=Sharing(keyed_by=(WIDTH,), note="concatenates [x; skip] before one projection"),
    kind="structure",
    module=f"{_MODULE}:SkipMerge",
    params=(
        ParamDef("source_dim", int, 1, minimum=1, doc="width of the skip's source stage"),
        ParamDef("merge", str, "concat", choices=("concat", "add")),
    ),
    cost=_merge_cost,
    doc="joins an earlier stage's output: concatenate + linear projection, or add",
)


# -- FIT latent tokens ------------------------------------------------------------------------


def groups_of(grid: tuple[int, ...], group: int) -> int:
    """Windows of side ``group`` on ``grid`` (each axis must be a multiple of it)."""
    return math.prod(g // group for g in grid)


def _latent_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    count = groups_of(ctx.grid, params["group"]) * params["tokens"]
    return Cost(params=count * ctx.dim, activations=count * ctx.dim)


LATENT_TOKENS = OpDef(
    name="latent_tokens",
    sharing=Sharing(keyed_by=(GRID,), note="latents per window of the grid"),
    kind="structure",
    module=f"{_MODULE}:LatentTokens",
    params=(ParamDef("tokens", int, 1, minimum=1), ParamDef("group", int, 1, minimum=1)),
    cost=_latent_cost,
    doc="learned latent tokens, `tokens` per group x group window of the data grid",
)


def _cross_cost(ctx: OpContext, params: Mapping[str, Any], *, to_latents: bool) -> Cost:
    d = ctx.dim
    latents = groups_of(ctx.grid, params["group"]) * params["tokens"]
    queries, keys = (latents, ctx.n) if to_latents else (ctx.n, latents)
    # a latent sees its window's group^rank data tokens; a data token its window's latents
    window = params["group"] ** len(ctx.grid) if to_latents else params["tokens"]
    # every query attends to the keys of its own window: QK^T and AV, head_dim each
    attended = 2 * queries * window * d
    cost = norm_cost("layernorm", queries * d, d) + norm_cost("layernorm", keys * d, d)
    cost += linear_cost(queries, d, d) + linear_cost(keys, d, 2 * d)
    cost += Cost(
        macs=attended,
        dynamic_macs=attended,
        activations=(d // params["head_dim"]) * queries * window + queries * d,
    )
    return cost + linear_cost(queries, d, d)


_CROSS_PARAMS = (
    ParamDef("tokens", int, 1, minimum=1),
    ParamDef("group", int, 1, minimum=1),
    ParamDef("head_dim", int, 32, minimum=1),
)

LATENT_READ = OpDef(
    name="latent_read",
    sharing=Sharing(elastic=("head_dim",), chunks={"kv.": (0, 2)}),
    kind="structure",
    module=f"{_MODULE}:LatentRead",
    params=_CROSS_PARAMS,
    cost=lambda ctx, params: _cross_cost(ctx, params, to_latents=True),
    doc="latents <- data: each window's latents cross-attend to its data tokens (residual)",
)

LATENT_WRITE = OpDef(
    name="latent_write",
    sharing=Sharing(elastic=("head_dim",), chunks={"kv.": (0, 2)}),
    kind="structure",
    module=f"{_MODULE}:LatentWrite",
    params=_CROSS_PARAMS,
    cost=lambda ctx, params: _cross_cost(ctx, params, to_latents=False),
    doc="data <- latents: each window's data tokens cross-attend to its latents (residual)",
)


# -- MatFormer nested MLP ---------------------------------------------------------------------


def _nested_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    d, t, bias = ctx.dim, ctx.tokens, params["bias"]
    used = hidden_width(d, params["ratio"])
    stored = hidden_width(d, params["parent_ratio"])
    run = linear_cost(t, d, used, bias) + linear_cost(t, used, d, bias)
    full = linear_cost(t, d, stored, bias) + linear_cost(t, stored, d, bias)
    # the module stores the parent's weights; a forward pass uses the prefix only
    return Cost(
        params=full.params + activation_params(params["act"]),
        macs=run.macs,
        activations=run.activations,
    )


NESTED_MLP = OpDef(
    name="nested_mlp",
    sharing=Sharing(elastic=("ratio",)),
    kind="channel_mixer",
    module=f"{_MODULE}:NestedMlp",
    layout=LAYOUT_TOKENS,
    params=(
        ParamDef("ratio", float, 4.0, minimum=0.0625, doc="hidden width used / width"),
        ParamDef("act", str, "gelu", choices=ACTIVATIONS),
        ParamDef("bias", bool, True),
        ParamDef("parent_ratio", float, 4.0, minimum=0.0625, doc="hidden width stored / width"),
    ),
    cost=_nested_cost,
    doc="MLP whose hidden units are the first int(ratio d) of a parent MLP (MatFormer)",
)


# -- shared weights (SReT) ----------------------------------------------------------------------


def shared_view(op: OpDef | None) -> OpDef:
    """``op`` as applied by a block that reuses another block's weights: its MACs, no params.

    ``None`` (a layer scale, which is not a registered op) becomes a zero-cost stand-in.
    """
    if op is None:
        return OpDef(
            name="layer_scale",
            sharing=Sharing(),
            kind="structure",
            module=f"{_MODULE}:Repeated",
            params=(ParamDef("init", float, 1.0),),
            cost=lambda ctx, params: Cost(),
        )
    inner = op.cost

    def cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
        c = inner(ctx, params)
        return dataclasses.replace(c, params=0)

    return dataclasses.replace(op, cost=cost, _param_index={})
