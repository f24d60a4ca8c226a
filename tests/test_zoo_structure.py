"""Structural spec fields: repeat and share (SReT), nested_ratio (MatFormer), latents + scope
(FIT), skip (U-Net), and fixed stages in declared spaces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from search_space import SearchSpace, spec_cost, validate_spec
from search_space.errors import SpaceError
from search_space.spec import ArchSpec, Block, InputSpec, Latents, Op, Skip, Stage
from tests.analytic_check import built_matches_analytic

ATT = Op.of("attention", {"head_dim": 16})
MLP = Op.of("mlp")
IMAGE = InputSpec("image", 10, resolution=(32, 32))


def _spec(stages: list[Stage], *, patch: int = 8, cls: bool = False) -> ArchSpec:
    stem = Op.of("patch_embed", {"patch_size": patch, "cls_token": cls})
    return ArchSpec(IMAGE, stem, tuple(stages), Op.of("classifier"))


def test_defaults_keep_the_old_json_keys() -> None:
    block = Block(ATT, MLP)
    assert set(block.to_dict()) == {
        "token_mixer", "channel_mixer", "norm", "layer_scale", "quant", "residual"
    }  # fmt: skip
    assert set(Stage(32, Op.of("none"), (block,)).to_dict()) == {"width", "downsample", "blocks"}


def test_structural_fields_round_trip() -> None:
    blocks = (
        Block(ATT, MLP, repeat=2),
        Block(ATT, Op.of("mlp", {"ratio": 1.0}), nested_ratio=4.0),
        Block(ATT, MLP, scope="latent"),
        Block(ATT, MLP, repeat=2, share=0),
    )
    spec = _spec(
        [
            Stage(32, Op.of("none"), blocks, latents=Latents(2, 2, 16)),
            Stage(32, Op.of("none"), (Block(ATT, MLP),), skip=Skip(0, "add")),
        ]
    )
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and again.id == spec.id
    assert again.stages[0].latents == Latents(2, 2, 16) and again.stages[1].skip == Skip(0, "add")


def test_repeat_counts_macs_per_application_and_params_once() -> None:
    from search_space import plan
    from search_space.costs import op_cost

    once = _spec([Stage(32, Op.of("none"), (Block(ATT, MLP),))])
    thrice = _spec([Stage(32, Op.of("none"), (Block(ATT, MLP, repeat=3),))])
    block_macs = sum(op_cost(item).macs for item in plan(once) if item.block == 0)
    assert spec_cost(thrice).params == spec_cost(once).params
    assert spec_cost(thrice).macs - spec_cost(once).macs == 2 * block_macs > 0
    built_matches_analytic(thrice, rel_tol=0.02)


def test_shared_block_adds_macs_but_no_params() -> None:
    proj = Block(Op.of("identity"), Op.of("mlp", {"ratio": 2.0}), norm="none", residual=False)
    plain = _spec([Stage(32, Op.of("none"), (Block(ATT, MLP), proj))])
    shared = _spec([Stage(32, Op.of("none"), (Block(ATT, MLP), proj, Block(ATT, MLP, share=0)))])
    assert spec_cost(shared).params == spec_cost(plain).params
    assert spec_cost(shared).macs > spec_cost(plain).macs
    built_matches_analytic(shared, rel_tol=0.02)


def test_nested_mlp_stores_the_parent_and_runs_the_prefix() -> None:
    small = _spec([Stage(32, Op.of("none"), (Block(ATT, Op.of("mlp", {"ratio": 1.0})),))])
    full = _spec([Stage(32, Op.of("none"), (Block(ATT, MLP),))])
    nested = _spec(
        [Stage(32, Op.of("none"), (Block(ATT, Op.of("mlp", {"ratio": 1.0}), nested_ratio=4.0),))]
    )
    assert spec_cost(nested).params == spec_cost(full).params
    assert spec_cost(nested).macs == spec_cost(small).macs
    built_matches_analytic(nested, rel_tol=0.02)


def test_latent_tokens_read_and_write_around_latent_blocks() -> None:
    local = Block(Op.of("window_attention", {"window": 2, "head_dim": 16}), MLP)
    blocks = (local, Block(ATT, MLP, scope="latent"), Block(ATT, MLP, scope="latent"), local)
    spec = _spec([Stage(32, Op.of("none"), blocks, latents=Latents(3, 2, 16))], patch=4, cls=True)
    from search_space import plan

    roles = [item.role for item in plan(spec)]
    assert roles.count("read") == 1 and roles.count("write") == 1 and "latents" in roles
    built_matches_analytic(spec, rel_tol=0.02)


def test_unet_skips_and_upsampling() -> None:
    conv = Block(Op.of("dwconv", {"kernel": 3}), MLP, norm="batchnorm")
    stages = [
        Stage(16, Op.of("none"), (conv,)),
        Stage(32, Op.of("conv"), (conv,)),
        Stage(16, Op.of("upsample"), (conv,), skip=Skip(0, "concat")),
        Stage(16, Op.of("none"), (conv,), skip=Skip(2, "add")),
    ]
    spec = _spec(stages, patch=2)
    built_matches_analytic(spec, rel_tol=0.02)


@pytest.mark.parametrize(
    ("stages", "field"),
    [
        ([Stage(32, Op.of("none"), (Block(ATT, MLP, scope="latent"),))], "scope"),
        ([Stage(32, Op.of("none"), (Block(ATT, MLP, share=0),))], "share"),
        (
            [Stage(32, Op.of("none"), (Block(ATT, MLP), Block(Op.of("identity"), MLP, share=0)))],
            "share",
        ),
        ([Stage(32, Op.of("none"), (Block(ATT, MLP),), skip=Skip(0))], "skip.source"),
        (
            [
                Stage(32, Op.of("none"), (Block(ATT, MLP),)),
                Stage(64, Op.of("conv"), (Block(ATT, MLP),), skip=Skip(0)),
            ],
            "skip.source",
        ),
        (
            [
                Stage(32, Op.of("none"), (Block(ATT, MLP),)),
                Stage(48, Op.of("conv", {"stride": 1}), (Block(ATT, MLP),), skip=Skip(0, "add")),
            ],
            "skip.merge",
        ),
        ([Stage(32, Op.of("none"), (Block(ATT, Op.of("glu"), nested_ratio=4.0),))], "nested"),
        (
            [Stage(32, Op.of("none"), (Block(ATT, Op.of("mlp"), nested_ratio=2.0),))],
            "nested_ratio",
        ),
        (
            [Stage(32, Op.of("none"), (Block(ATT, MLP),), latents=Latents(1, 3))],
            "latents.group",
        ),
    ],
)
def test_bad_structure_raises_naming_the_field(stages: list[Stage], field: str) -> None:
    with pytest.raises(SpaceError, match=field.split(".")[0]):
        validate_spec(_spec(stages))


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"repeat": 0}, "repeat"),
        ({"nested_ratio": -1}, "nested_ratio"),
        ({"scope": "global"}, "scope"),
        ({"share": "zero"}, "share"),
    ],
)
def test_bad_block_json_names_the_field(block: dict, field: str) -> None:
    data = _spec([Stage(32, Op.of("none"), (Block(ATT, MLP),))]).to_dict()
    data["stages"][0]["blocks"][0].update(block)
    with pytest.raises(SpaceError, match=rf"stages\[0\]\.blocks\[0\]\.{field}"):
        ArchSpec.from_dict(data)


def test_fixed_stage_in_a_declared_space() -> None:
    fixed = [
        Block(ATT, MLP).to_dict(),
        Block(Op.of("pooling"), MLP, norm="groupnorm", layer_scale=1e-5).to_dict(),
        Block(ATT, MLP, share=0).to_dict(),
    ]
    decl = {
        "input": IMAGE.to_dict(),
        "stem": {"name": "patch_embed", "patch_size": 4},
        "token_mixers": {"dwconv": {"kernel": [3, 5]}},
        "stages": [
            {"depth": [1, 2], "width": [16], "token_mixers": ["dwconv"]},
            {"width": [32, 48], "downsample": "patch_merging", "blocks": fixed},
        ],
        "head": "classifier",
    }
    space = SearchSpace.from_dict(decl)
    # stage 0: depth 1 or 2, uniformly one of 2 kernels; stage 1: 2 widths only
    assert space.cardinality() == (2 + 2) * 2
    rng = np.random.default_rng(0)
    for _ in range(6):
        spec = space.sample(rng)
        validate_spec(spec)
        assert space.contains(spec) and space.decode(space.encode(spec)) == spec
        assert spec.stages[1].blocks[2].share == 0
    unshared = dataclasses.replace(spec.stages[1].blocks[2], share=None)
    blocks = (*spec.stages[1].blocks[:2], unshared)
    outside = spec.replace(
        stages=(spec.stages[0], dataclasses.replace(spec.stages[1], blocks=blocks))
    )
    assert not space.contains(outside)


def test_fixed_stage_errors_name_the_field() -> None:
    decl = {
        "input": IMAGE.to_dict(),
        "stem": "patch_embed",
        "token_mixers": {"identity": {}},
        "stages": [{"width": [16], "blocks": [{"token_mixer": {"name": "identity"}}]}],
        "head": "classifier",
    }
    with pytest.raises(SpaceError, match=r"stages\[0\]\.blocks\[0\]\.channel_mixer"):
        SearchSpace.from_dict(decl)


def test_token_mixer_none_leaves_only_the_channel_branch() -> None:
    from search_space import plan

    only_mlp = _spec([Stage(32, Op.of("none"), (Block(Op.of("none"), MLP, layer_scale=0.1),))])
    roles = [item.role for item in plan(only_mlp) if item.block == 0]
    assert roles == ["norm2", "channel_mixer", "layer_scale2"]
    built_matches_analytic(only_mlp, rel_tol=0.02)
    empty = _spec([Stage(32, Op.of("none"), (Block(Op.of("none"), Op.of("none")),))])
    with pytest.raises(SpaceError, match="token mixer or a channel mixer"):
        validate_spec(empty)


def test_channel_slices_and_grow_express_a_split_and_concat_branch() -> None:
    # Next-ViT's NTB: attention on 24 channels, 8 more projected from them (grow), a mixer on
    # the new 8 only, then an MLP over all 32
    attn = Block(Op.of("attention", {"head_dim": 8}), Op.of("none"))
    tail = Block(Op.of("dwconv", {"kernel": 3}), Op.of("none"), norm="none", channels=(24, 32))
    stages = [
        Stage(24, Op.of("none"), (attn,)),
        Stage(32, Op.of("grow"), (tail, Block(Op.of("none"), MLP))),
    ]
    spec = _spec(stages, patch=4, cls=True)
    assert ArchSpec.from_json(spec.to_json()) == spec
    mixer = next(
        i
        for i in __import__("search_space").plan(spec)
        if i.path.endswith("[0].token_mixer") and i.stage == 1
    )
    assert mixer.ctx.dim == 8
    built_matches_analytic(spec, rel_tol=0.02)
    wide = dataclasses.replace(tail, channels=(24, 40))
    bad = spec.replace(stages=(stages[0], dataclasses.replace(stages[1], blocks=(wide,))))
    with pytest.raises(SpaceError, match="channels"):
        validate_spec(bad)
    shrink = spec.replace(stages=(stages[0], Stage(16, Op.of("grow"), (attn,))))
    with pytest.raises(SpaceError, match="grow"):
        validate_spec(shrink)


def test_ranged_stage_repeat_is_a_decision() -> None:
    decl = {
        "input": IMAGE.to_dict(),
        "stem": {"name": "patch_embed", "patch_size": 4},
        "token_mixers": {"attention": {"head_dim": 16}, "pooling": {}},
        "stages": [{"depth": [1, 2], "width": [32], "repeat": [1, 2, 3]}],
        "head": "classifier",
    }
    plain = dict(decl, stages=[{"depth": [1, 2], "width": [32]}])
    space = SearchSpace.from_dict(decl)
    assert space.cardinality() == 3 * SearchSpace.from_dict(plain).cardinality()
    assert space.describe()["stages"][0]["repeat"] == [1, 2, 3]
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(12):
        spec = space.sample(rng)
        validate_spec(spec)
        assert space.decode(space.encode(spec)) == spec
        seen |= {b.repeat for b in spec.blocks}
    assert seen == {1, 2, 3}
    mixed = spec.replace(
        stages=(
            dataclasses.replace(
                spec.stages[0],
                blocks=(dataclasses.replace(spec.stages[0].blocks[0], repeat=4),),
            ),
        )
    )
    assert not space.contains(mixed)
    # a stage that declares no repeat holds unrepeated blocks only
    assert not SearchSpace.from_dict(plain).contains(spec) or all(
        b.repeat == 1 for b in spec.blocks
    )


def test_stage_nested_ratio_makes_an_elastic_ffn_space() -> None:
    decl = {
        "input": IMAGE.to_dict(),
        "stem": {"name": "patch_embed", "patch_size": 8},
        "token_mixers": {"attention": {"head_dim": 16}},
        "channel_mixers": {"mlp": {"ratio": [0.5, 1.0, 2.0, 4.0]}},
        "stages": [{"depth": [2], "width": [32], "nested_ratio": 4.0}],
        "head": "classifier",
    }
    space = SearchSpace.from_dict(decl)
    specs = [space.sample(np.random.default_rng(seed)) for seed in range(8)]
    params = {spec_cost(s).params for s in specs}
    assert len(params) == 1  # every granularity stores the same parent weights
    assert len({spec_cost(s).macs for s in specs}) > 1  # but runs a different prefix
    for s in specs:
        assert all(b.nested_ratio == 4.0 for b in s.blocks) and space.contains(s)
    bad = dict(decl, channel_mixers={"mlp": {"ratio": [8.0]}})
    with pytest.raises(SpaceError, match=r"stages\[0\]\.channel_mixers"):
        SearchSpace.from_dict(bad)
