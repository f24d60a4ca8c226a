"""Shift token mixer (catalog family M13): ShiftViT's partial channel shift."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import LAYOUT_GRID, Cost, OpContext, OpDef, ParamDef
from search_space.ops.causal import CAUSAL, causal_flag, causal_needs_sequence
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing


def _shift_groups(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    # one channel group per direction: 2 directions per grid axis, each at least one channel
    n_div, directions = params["n_div"], 2 * len(ctx.grid)
    if n_div < directions:
        return f"n_div={n_div} leaves fewer than {directions} groups (2 per grid axis)"
    if ctx.dim < n_div:
        return f"n_div={n_div} exceeds the width {ctx.dim}: no channel would move"
    return None


register(
    OpDef(
        name="shift",
        sharing=Sharing(elastic=("n_div",)),
        kind="token_mixer",
        module="search_space.nn.mixers.shift:Shift",
        family="M13",
        layout=LAYOUT_GRID,
        complexity="O(N d)",
        params=(
            ParamDef(
                "n_div",
                int,
                12,
                minimum=2,
                doc="each direction shifts width // n_div channels by one cell",
            ),
            CAUSAL,
        ),
        rules=(_shift_groups, causal_needs_sequence),
        cost=lambda ctx, params: Cost(activations=ctx.n * ctx.dim),
        causal=causal_flag(
            "token shift from the past only: the two groups read positions t - 1 and t - 2"
        ),
        examples=({"n_div": 4}, {"n_div": 4, "causal": True}),
        doc="shift 1/n_div of the channels one cell in each direction, zero fill (ShiftViT)",
    )
)
