"""Token-mixer families, as the proxies and the benchmarks group them.

Every token mixer declares a seed-catalog family (``OpDef.family``, ``M01``..``M19``, see
``../shared/docs/seed_catalog.md``). The catalog's first nine families are attention in some form
(dense, window, neighbourhood, sparse, reduced-KV, routed, linear, additive, frequency-split): those
are the "MSA" of TF-TAS's DSS indicator. The coarse groups below are the per-family rows of the
proxies benchmark on hybrid spaces.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

from torch import nn

from search_space.ops import TOKEN_MIXERS
from search_space.spec import ArchSpec

ATTENTION_FAMILIES = frozenset(f"M0{i}" for i in range(1, 10))

# catalog family -> coarse group; families not listed fall under "other"
GROUPS: dict[str, str] = {
    **{f: "attention" for f in ATTENTION_FAMILIES},
    "M10": "spectral",
    "M11": "pooling/identity/shift",
    "M12": "pooling/identity/shift",
    "M13": "pooling/identity/shift",
    "M14": "token-mlp",
    "M15": "conv",
    "M16": "conv",
    "M17": "conv",
    "M18": "conv",
    "M19": "state-space",
}


def mixer_group(mixer: str) -> str:
    """The coarse group of a registered token mixer (``attention``, ``conv``, ...)."""
    return GROUPS.get(TOKEN_MIXERS.get(mixer).family, "other")


def is_attention(mixer: str) -> bool:
    """Whether a registered token mixer is attention-like (catalog families M01-M09)."""
    return TOKEN_MIXERS.get(mixer).family in ATTENTION_FAMILIES


def dominant_group(spec: ArchSpec) -> str:
    """The group holding most of the spec's blocks; ties go to the group of the later block
    (later stages are wider and carry more of the compute)."""
    groups = [
        mixer_group(b.token_mixer.name)
        for st in spec.stages
        for b in st.blocks
        for _ in range(b.repeat)
    ]
    if not groups:
        return "none"
    counts = Counter(groups)
    best = max(counts.values())
    return next(g for g in reversed(groups) if counts[g] == best)


@cache
def attention_classes() -> tuple[type[nn.Module], ...]:
    """The module classes of every attention-like token mixer in the registry (imported lazily,
    as the builder does, from ``OpDef.module``)."""
    classes = []
    for name in TOKEN_MIXERS.names():
        op = TOKEN_MIXERS.get(name)
        if op.family in ATTENTION_FAMILIES and op.module:
            classes.append(op.module_class())
    return tuple(classes)
