"""The contract of a stem, downsampler, head or norm, for the built-ins and for plug-ins.

Each op is placed in a minimal network (identity token mixer, no channel mixer) for every input it
supports (an odd-sized image, feature sequences, token ids); the network builds, runs forward and
backward, has exactly the analytic parameter count, and its counted MACs agree with the analytic
total within 2% (`mixnas.testing.analytic.built_matches_analytic`).

Use from a plug-in's tests::

    import pytest
    from mixnas.testing.layers import check_downsample, downsample_cases

    @pytest.mark.parametrize(("name", "params", "inp", "cls_token"), downsample_cases(["my_down"]))
    def test_my_downsampler(name, params, inp, cls_token):
        check_downsample(name, params, inp, cls_token)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from mixnas.testing.analytic import built_matches_analytic
from search_space import ArchSpec, Block, InputSpec, Op, Stage, validate_spec
from search_space.ops import DOWNSAMPLERS, HEADS, NORMS, STEMS

IMAGE = InputSpec("image", 7, channels=3, resolution=(15, 16))
FEATURES = InputSpec("tokens", 7, seq_len=20, feature_dim=12)
IDS = InputSpec("tokens", 7, seq_len=20, vocab_size=50)
# a language model's input: one output per vocabulary entry (causal heads)
LM_IDS = InputSpec("tokens", 50, seq_len=20, vocab_size=50)
STEM_VARIANTS: tuple[dict[str, Any], ...] = (
    {},
    {"cls_token": True, "pos_embed": "learned"},
    {"pos_embed": "sinusoidal"},
)
# parameter sets a downsampler is checked with besides its defaults and examples
DOWNSAMPLE_VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "conv": tuple(
        {"norm": n, "norm_position": p} for n in ("layernorm", "batchnorm") for p in ("pre", "post")
    ),
}
HEAD_VARIANTS: tuple[dict[str, Any], ...] = (
    {},
    {"pool": "cls", "norm_position": "pre_pool"},
    {"hidden": 32, "norm": "batchnorm"},
)


def minimal_spec(
    inp: InputSpec,
    stem: Op,
    *,
    downsample: Op | None = None,
    head: Op | None = None,
    norm: str = "layernorm",
) -> ArchSpec:
    """One stage of width 16 with one identity block (and a second stage after ``downsample``)."""
    block = Block(Op.of("identity"), Op.of("none"), norm)
    stages = [Stage(16, Op.of("none"), (block,))]
    if downsample is not None:
        stages.append(Stage(24, downsample, (block,)))
    return ArchSpec(inp, stem, tuple(stages), head or Op.of("classifier"))


def check_spec(spec: ArchSpec) -> None:
    validate_spec(spec)
    built_matches_analytic(spec, rel_tol=0.02)


def _names(registry: Any, names: Iterable[str] | None) -> list[str]:
    if names is None:
        return registry.names()
    names = list(names)
    for name in names:
        registry.get(name)  # an unknown name raises, listing the known ones
    return names


def stem_cases(names: Iterable[str] | None = None) -> list[Any]:
    """``pytest.param(inp, stem)`` per stem, input it supports and variant: its defaults, with a
    class token and learned positions, with sinusoidal positions. A stem takes token ids exactly
    when it has a ``vocab_size``-reading op (``token_embed``)."""
    cases = []
    for name in _names(STEMS, names):
        op = STEMS.get(name)
        for inp in (IMAGE, FEATURES, IDS):
            if len(inp.grid) in op.spatial_dims and (name == "token_embed") == bool(inp.vocab_size):
                for extra in STEM_VARIANTS:
                    if all(op.param(k) is not None for k in extra):
                        label = f"{name}-{inp.kind}-{len(inp.grid)}d-{len(extra)}"
                        cases.append(pytest.param(inp, Op.of(name, extra), id=label))
    return cases


def check_stem(inp: InputSpec, stem: Op) -> None:
    check_spec(minimal_spec(inp, stem))


def downsample_cases(names: Iterable[str] | None = None) -> list[Any]:
    """``pytest.param(name, params, inp, cls_token)`` per downsampler, its defaults and examples,
    2-D and 1-D inputs, with and without a class token."""
    cases = []
    for name in _names(DOWNSAMPLERS, names):
        op = DOWNSAMPLERS.get(name)
        variants = ({}, *op.examples, *DOWNSAMPLE_VARIANTS.get(name, ()))
        for i, params in enumerate(variants):
            for inp, label in ((IMAGE, "2d"), (FEATURES, "1d")):
                if len(inp.grid) in op.spatial_dims:
                    for cls_token in (False, True):
                        case_id = f"{name}-ex{i}-{label}-cls{int(cls_token)}"
                        cases.append(pytest.param(name, params, inp, cls_token, id=case_id))
    return cases


def check_downsample(name: str, params: dict[str, Any], inp: InputSpec, cls_token: bool) -> None:
    stem = Op.of("patch_embed", {"patch_size": 2, "cls_token": cls_token})
    if name == "none":
        spec = minimal_spec(inp, stem)
        blocks = spec.stages[0].blocks
        check_spec(spec.replace(stages=(*spec.stages, Stage(16, Op.of("none"), blocks))))
        return
    check_spec(minimal_spec(inp, stem, downsample=Op.of(name, params)))


def head_cases(names: Iterable[str] | None = None) -> list[Any]:
    """``pytest.param(name, params)`` per head and variant its parameters allow."""
    cases = []
    for name in _names(HEADS, names):
        op = HEADS.get(name)
        for i, params in enumerate((*HEAD_VARIANTS, *op.examples)):
            if all(op.param(k) is not None for k in params):
                cases.append(pytest.param(name, params, id=f"{name}-{i}"))
    return cases


def check_head(name: str, params: dict[str, Any]) -> None:
    """A classifier or a segmentation head on an odd image with a class token; a causal (LM)
    head on token ids with a class token, which it drops (the minimal network is causal:
    identity mixer, layer norm); an image (super-resolution) head behind a stride-1 stem, since
    its body keeps the input's resolution."""
    head = HEADS.get(name)
    if head.needs_causal:
        stem = Op.of("token_embed", {"cls_token": True, "pos_embed": "learned"})
        check_spec(minimal_spec(LM_IDS, stem, head=Op.of(name, params)))
        return
    stem = Op.of("patch_embed", {"patch_size": 4, "cls_token": True})
    if head.output == "image":
        stem = Op.of("patch_embed", {"patch_size": 3, "stride": 1, "padding": 1, "cls_token": True})
    check_spec(minimal_spec(IMAGE, stem, head=Op.of(name, params)))


def norm_cases(names: Iterable[str] | None = None) -> list[str]:
    return _names(NORMS, names)


def check_norm(name: str) -> None:
    check_spec(minimal_spec(IMAGE, Op.of("patch_embed", {"patch_size": 4}), norm=name))
