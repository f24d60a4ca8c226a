"""The registries of built-in and user operations, one per kind."""

from __future__ import annotations

from search_space.ops.base import OpDef
from search_space.registry import Registry

# plug-in packages add ops through this entry point group (`search_space.plugins`)
GROUP = "mixnas.ops"

TOKEN_MIXERS: Registry[OpDef] = Registry("token mixer", group=GROUP)
CHANNEL_MIXERS: Registry[OpDef] = Registry("channel mixer", group=GROUP)
STEMS: Registry[OpDef] = Registry("stem", group=GROUP)
DOWNSAMPLERS: Registry[OpDef] = Registry("downsampler", group=GROUP)
HEADS: Registry[OpDef] = Registry("head", group=GROUP)
NORMS: Registry[OpDef] = Registry("norm", group=GROUP)

REGISTRIES: dict[str, Registry[OpDef]] = {
    "token_mixer": TOKEN_MIXERS,
    "channel_mixer": CHANNEL_MIXERS,
    "stem": STEMS,
    "downsample": DOWNSAMPLERS,
    "head": HEADS,
    "norm": NORMS,
}

# Activation functions a channel mixer, stem or head may name (implemented in search_space.nn).
ACTIVATIONS = ("gelu", "relu", "silu", "hardswish", "tanh", "star_relu", "identity", "lrelu")


def register(op: OpDef) -> OpDef:
    """Adds ``op`` to the registry of its kind; a duplicate name raises `RegistryError`."""
    return REGISTRIES[op.kind].register(op.name, op)
