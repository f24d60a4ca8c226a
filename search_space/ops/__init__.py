"""Torch-free operation definitions and their registries.

Importing this package registers every built-in operation. User code extends mixnas by calling
`register` with an `OpDef` whose ``module`` points at its own `torch.nn.Module`.
"""

from search_space.ops import (  # noqa: F401
    attention_downsample,
    channel_mixers,
    dense_heads,
    downsample,
    grow,
    heads,
    kan,
    mobile_downsample,
    nb201_ops,
    norms,
    stems,
    token_mixers,
    tokenizers,
    upsample,
)
from search_space.ops.base import LAYOUTS, PER_TOKEN, Causal, Cost, OpContext, OpDef, ParamDef
from search_space.ops.registries import (
    ACTIVATIONS,
    CHANNEL_MIXERS,
    DOWNSAMPLERS,
    HEADS,
    NORMS,
    REGISTRIES,
    STEMS,
    TOKEN_MIXERS,
    register,
)
from search_space.ops.sharing import Sharing

__all__ = [
    "ACTIVATIONS",
    "CHANNEL_MIXERS",
    "DOWNSAMPLERS",
    "HEADS",
    "LAYOUTS",
    "NORMS",
    "PER_TOKEN",
    "REGISTRIES",
    "STEMS",
    "TOKEN_MIXERS",
    "Causal",
    "Cost",
    "OpContext",
    "OpDef",
    "ParamDef",
    "Sharing",
    "register",
]
