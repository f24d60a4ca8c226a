"""MambaOut's Gated CNN block as one token mixer (catalog family M17).

"MambaOut: Do We Really Need Mamba for Vision?": ``fc2(act(g) * [i, conv(c)])`` with
``[g, i, c] = fc1(x)``, a depthwise conv over the ``c`` channels inside the gate. It mixes tokens
and channels at once, so a MambaOut block is norm ``layernorm``, token mixer ``gated_cnn`` and
channel mixer ``none`` (timm ``mambaout.GatedConvBlock``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID_LAST,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    linear_cost,
)
from search_space.ops.causal import CAUSAL, causal_flag, causal_needs_sequence
from search_space.ops.channel_mixers import activation_params, hidden_width, odd
from search_space.ops.registries import ACTIVATIONS, register
from search_space.ops.sharing import WIDTH, Sharing


def gated_cnn_widths(dim: int, params: Mapping[str, Any]) -> tuple[int, int]:
    """(hidden, conv channels): h = int(ratio * d), c = int(conv_ratio * d)."""
    return hidden_width(dim, params["ratio"]), int(params["conv_ratio"] * dim)


def _fits(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    hidden, conv = gated_cnn_widths(ctx.dim, params)
    if not 1 <= conv <= hidden:
        return (
            f"conv_ratio={params['conv_ratio']} gives {conv} conv channels; allowed: 1 to the "
            f"hidden width {hidden}"
        )
    return None


def _gated_cnn_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d = ctx.n, ctx.dim
    hidden, conv = gated_cnn_widths(d, params)
    return (
        linear_cost(n, d, 2 * hidden)
        + conv_cost(ctx.grid, conv, conv, params["kernel"], groups=conv)
        + Cost(params=activation_params(params["act"]), activations=n * hidden)
        + linear_cost(n, hidden, d)
    )


register(
    OpDef(
        name="gated_cnn",
        sharing=Sharing(
            elastic=("kernel",),
            keyed_by=(WIDTH,),
            note="fc1 packs [gate; identity; conv] parts rounded from the width",
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.gated_cnn:GatedCnn",
        family="M17",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N d h + N c k^2)",
        params=(
            ParamDef("ratio", float, 8 / 3, minimum=0.0625, doc="hidden width / width"),
            ParamDef("kernel", int, 7, minimum=1, doc="depthwise kernel (odd)"),
            ParamDef("conv_ratio", float, 1.0, minimum=0.0, doc="conv channels / width"),
            ParamDef("act", str, "gelu", choices=ACTIVATIONS, doc="on the gate"),
            CAUSAL,
        ),
        rules=(odd("kernel"), _fits, causal_needs_sequence),
        cost=_gated_cnn_cost,
        causal=causal_flag("the depthwise conv pads k - 1 cells on the left"),
        examples=(
            {"ratio": 2.0, "kernel": 3, "conv_ratio": 0.5, "act": "silu"},
            {"kernel": 5, "causal": True},
        ),
        doc="MambaOut Gated CNN: fc1 to [gate, identity, conv] parts, dwconv in the gate, fc2",
    )
)
