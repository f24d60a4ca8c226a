"""Small constructors the zoo's model definitions share (torch-free).

They only assemble `ArchSpec` values; every default mirrors the reference implementation the
model's entry cites, so a definition reads like the paper's configuration table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from search_space.spec import TOKENS_ALL, ArchSpec, Block, InputSpec, Op, Stage

IMAGENET_CLASSES = 1000


def op(name: str, **params: Any) -> Op:
    """An op reference with explicit parameters (defaults of the registry fill the rest)."""
    return Op.of(name, params)


def image(resolution: int = 224, num_classes: int = IMAGENET_CLASSES) -> InputSpec:
    return InputSpec("image", num_classes, channels=3, resolution=(resolution, resolution))


def block(
    token_mixer: Op,
    channel_mixer: Op,
    *,
    norm: str = "layernorm",
    layer_scale: float | None = None,
    tokens: str = TOKENS_ALL,
) -> Block:
    return Block(token_mixer, channel_mixer, norm=norm, layer_scale=layer_scale, tokens=tokens)


def stage(width: int, downsample: Op, blocks: Sequence[Block]) -> Stage:
    return Stage(width, downsample, tuple(blocks))


def uniform(width: int, depth: int, downsample: Op, make: Block) -> Stage:
    """A stage of ``depth`` identical blocks."""
    return Stage(width, downsample, (make,) * depth)


def spec(
    stem: Op,
    stages: Sequence[Stage],
    head: Op,
    *,
    resolution: int = 224,
    num_classes: int = IMAGENET_CLASSES,
) -> ArchSpec:
    return ArchSpec(image(resolution, num_classes), stem, tuple(stages), head)


def per_stage(values: Sequence[Any] | Any, count: int) -> list[Any]:
    """A per-stage list from one value or a list of ``count`` values."""
    if isinstance(values, list | tuple):
        if len(values) != count:
            raise ValueError(f"expected {count} per-stage values, got {len(values)}")
        return list(values)
    return [values] * count


def params_of(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(mapping or {})


def _complete(registry: Any, ref: Op, path: str) -> Op:
    return Op.of(ref.name, registry.get(ref.name).complete(ref.kwargs, path))


def complete_ops(arch: ArchSpec) -> ArchSpec:
    """``arch`` with every op's parameters written out, defaults included.

    Declared spaces write specs this way, so a zoo spec compares equal to the same point of a
    space (``contains`` and seeding rely on it).
    """
    from search_space.ops import CHANNEL_MIXERS, DOWNSAMPLERS, HEADS, STEMS, TOKEN_MIXERS

    stages = []
    for i, st in enumerate(arch.stages):
        blocks = tuple(
            dataclasses.replace(
                b,
                token_mixer=_complete(TOKEN_MIXERS, b.token_mixer, f"stages[{i}].token_mixer"),
                channel_mixer=_complete(
                    CHANNEL_MIXERS, b.channel_mixer, f"stages[{i}].channel_mixer"
                ),
            )
            for b in st.blocks
        )
        down = _complete(DOWNSAMPLERS, st.downsample, f"stages[{i}]")
        stages.append(dataclasses.replace(st, downsample=down, blocks=blocks))
    return arch.replace(
        stem=_complete(STEMS, arch.stem, "stem"),
        stages=tuple(stages),
        head=_complete(HEADS, arch.head, "head"),
    )
