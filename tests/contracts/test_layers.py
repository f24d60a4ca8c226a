"""Contract every registered stem, downsampler, head and norm passes.

Each op is placed in a minimal network (identity token mixer, no channel mixer) for every input it
supports; the network builds, runs forward and backward, has exactly the analytic parameter count,
and its counted MACs agree with the analytic total within 2%.
"""

from __future__ import annotations

import pytest

from search_space import (
    ArchSpec,
    Block,
    InputSpec,
    Op,
    Stage,
    validate_spec,
)
from search_space.ops import DOWNSAMPLERS, HEADS, NORMS, STEMS
from tests.analytic_check import built_matches_analytic

IMAGE = InputSpec("image", 7, channels=3, resolution=(15, 16))
FEATURES = InputSpec("tokens", 7, seq_len=20, feature_dim=12)
IDS = InputSpec("tokens", 7, seq_len=20, vocab_size=50)


def _spec(
    inp: InputSpec,
    stem: Op,
    *,
    downsample: Op | None = None,
    head: Op | None = None,
    norm: str = "layernorm",
) -> ArchSpec:
    block = Block(Op.of("identity"), Op.of("none"), norm)
    stages = [Stage(16, Op.of("none"), (block,))]
    if downsample is not None:
        stages.append(Stage(24, downsample, (block,)))
    return ArchSpec(inp, stem, tuple(stages), head or Op.of("classifier"))


def _check(spec: ArchSpec) -> None:
    validate_spec(spec)
    built_matches_analytic(spec, rel_tol=0.02)


def _stem_cases() -> list:
    cases = []
    for name in STEMS.names():
        op = STEMS.get(name)
        for inp in (IMAGE, FEATURES, IDS):
            if len(inp.grid) in op.spatial_dims and (name == "token_embed") == bool(inp.vocab_size):
                for extra in (
                    {},
                    {"cls_token": True, "pos_embed": "learned"},
                    {"pos_embed": "sinusoidal"},
                ):
                    cases.append(
                        pytest.param(
                            inp,
                            Op.of(name, extra),
                            id=f"{name}-{inp.kind}-{len(inp.grid)}d-{len(extra)}",
                        )
                    )
    return cases


@pytest.mark.parametrize(("inp", "stem"), _stem_cases())
def test_stem_contract(inp: InputSpec, stem: Op) -> None:
    _check(_spec(inp, stem))


@pytest.mark.parametrize("name", DOWNSAMPLERS.names())
@pytest.mark.parametrize("cls_token", [False, True])
@pytest.mark.parametrize("inp", [IMAGE, FEATURES], ids=["2d", "1d"])
def test_downsample_contract(name: str, cls_token: bool, inp: InputSpec) -> None:
    stem = Op.of("patch_embed", {"patch_size": 2, "cls_token": cls_token})
    if name == "none":
        spec = _spec(inp, stem)
        _check(spec.replace(stages=(*spec.stages, Stage(16, Op.of("none"), spec.stages[0].blocks))))
        return
    variants = (
        [
            {},
            *(
                {"norm": n, "norm_position": p}
                for n in ("layernorm", "batchnorm")
                for p in ("pre", "post")
            ),
        ]
        if name == "conv"
        else [{}]
    )
    for params in variants:
        _check(_spec(inp, stem, downsample=Op.of(name, params)))


@pytest.mark.parametrize("name", HEADS.names())
@pytest.mark.parametrize(
    "params",
    [{}, {"pool": "cls", "norm_position": "pre_pool"}, {"hidden": 32, "norm": "batchnorm"}],
)
def test_head_contract(name: str, params: dict) -> None:
    stem = Op.of("patch_embed", {"patch_size": 4, "cls_token": True})
    _check(_spec(IMAGE, stem, head=Op.of(name, params)))


@pytest.mark.parametrize("name", NORMS.names())
def test_norm_contract(name: str) -> None:
    _check(_spec(IMAGE, Op.of("patch_embed", {"patch_size": 4}), norm=name))
