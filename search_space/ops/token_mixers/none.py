"""The absent token mixer: a block whose only branch is its channel mixer (catalog M12)."""

from __future__ import annotations

from search_space.ops.base import LAYOUT_TOKENS, PER_TOKEN, Cost, OpDef
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing

register(
    OpDef(
        name="none",
        sharing=Sharing(),
        kind="token_mixer",
        module="search_space.nn.structure:NoTokenMixer",
        family="M12",
        layout=LAYOUT_TOKENS,
        complexity="O(1)",
        params=(),
        cost=lambda ctx, params: Cost(),
        causal=PER_TOKEN,
        doc="no token branch: the block is x + channel_mixer(norm(x)) only (LITv2 early stages)",
    )
)
