"""Parameter-free and trivial token mixers (catalog family M12)."""

from __future__ import annotations

from search_space.ops.base import LAYOUT_TOKENS, PER_TOKEN, Cost, OpDef
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing

register(
    OpDef(
        name="identity",
        sharing=Sharing(),
        kind="token_mixer",
        module="search_space.nn.mixers.simple:IdentityMixer",
        family="M12",
        layout=LAYOUT_TOKENS,
        complexity="O(1)",
        params=(),
        cost=lambda ctx, params: Cost(),
        causal=PER_TOKEN,
        doc="no token mixing (IdentityFormer, RIFormer)",
    )
)
