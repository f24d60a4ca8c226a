"""MetaFormer-macro models (catalog MA2, MA4): PoolFormer, RIFormer, ConvFormer, CAFormer.

Yu et al., "MetaFormer Is Actually What You Need for Vision" (2022) and "MetaFormer Baselines for
Vision" (2023); Wang et al., "RIFormer" (2023). Configurations follow timm's ``metaformer.py``
(``poolformer_*`` = v1: GroupNorm(1), layer scale 1e-5, 7x7/s4 stem, 3x3/s2 downsampling).
"""

from __future__ import annotations

from collections.abc import Sequence

from search_space.spec import ArchSpec, Block, Op
from search_space.zoo._build import block, op, spec, stage
from search_space.zoo.registry import add, paper, timm

POOLFORMER = "MetaFormer Is Actually What You Need for Vision"
METAFORMER2 = "MetaFormer Baselines for Vision"
RIFORMER = "RIFormer: Keep Your Vision Backbone Effective While Removing Token Mixer"

S12 = ((2, 2, 6, 2), (64, 128, 320, 512))
S18 = ((3, 3, 9, 3), (64, 128, 320, 512))
S24 = ((4, 4, 12, 4), (64, 128, 320, 512))
S36 = ((6, 6, 18, 6), (64, 128, 320, 512))
S36_V2 = ((3, 12, 18, 3), (64, 128, 320, 512))
M36 = ((6, 6, 18, 6), (96, 192, 384, 768))


def metaformer_v1(depths: Sequence[int], widths: Sequence[int], mixer: Op) -> ArchSpec:
    """PoolFormer v1 macro: GroupNorm(1) blocks with layer scale 1e-5 and a GELU MLP 4x."""
    layer = block(mixer, op("mlp", ratio=4.0), norm="groupnorm", layer_scale=1e-5)
    stages = [
        stage(w, op("none") if i == 0 else op("conv", kernel=3), [layer] * d)
        for i, (d, w) in enumerate(zip(depths, widths, strict=True))
    ]
    return spec(
        op("patch_embed", patch_size=7, stride=4, padding=2),
        stages,
        op("classifier", norm="groupnorm", norm_position="pre_pool"),
    )


def metaformer_v2(depths: Sequence[int], widths: Sequence[int], mixers: Sequence[Op]) -> ArchSpec:
    """MetaFormer-baselines macro: 7x7/s4 stem + LN, LN then 3x3/s2 conv between stages, LN
    blocks with a bias-free StarReLU MLP 4x, MLP head (4x hidden, squared-ReLU in the paper)."""
    stages = []
    for i, (d, w, mixer) in enumerate(zip(depths, widths, mixers, strict=True)):
        layer: Block = block(mixer, op("mlp", ratio=4.0, act="star_relu", bias=False))
        down = op("none") if i == 0 else op("conv", kernel=3, norm="layernorm", norm_position="pre")
        stages.append(stage(w, down, [layer] * d))
    return spec(
        op("patch_embed", patch_size=7, stride=4, padding=2, norm="layernorm"),
        stages,
        op("classifier", hidden=4 * widths[-1], hidden_act="relu"),
    )


def _poolformer(name: str, cfg: tuple[tuple[int, ...], tuple[int, ...]], pub: tuple) -> None:
    @add(
        name,
        paper=POOLFORMER,
        families=("M11",),
        macro=("MA2",),
        published=timm(*pub),
    )
    def factory() -> ArchSpec:
        return metaformer_v1(*cfg, op("pooling", pool_size=3))


_poolformer("poolformer_s12", S12, ("poolformer_s12", 11.92, 1.82))
_poolformer("poolformer_s24", S24, ("poolformer_s24", 21.39, 3.41))
_poolformer("poolformer_s36", S36, ("poolformer_s36", 30.86, 5.0))
_poolformer("poolformer_m36", M36, ("poolformer_m36", 56.17, 8.8))


@add(
    "riformer_s12",
    paper=RIFORMER,
    families=("M12",),
    macro=("MA2",),
    published=paper(11.92, 1.82, "mmpretrain RIFormer README (riformer-s12, deploy)"),
    notes="the deployed (re-parameterised) network: identity mixer in the PoolFormer-S12 macro",
)
def riformer_s12() -> ArchSpec:
    return metaformer_v1(*S12, op("identity"))


_SEPCONV = op("sepconv", expansion=2.0, kernel=7)
_ATTN32 = op("attention", head_dim=32, qkv_bias=False)


@add(
    "convformer_s18",
    paper=METAFORMER2,
    families=("M15",),
    macro=("MA2",),
    published=timm("convformer_s18", 26.77, 3.96),
    notes="LayerNorms keep their bias (timm: bias-free); no residual scale",
)
def convformer_s18() -> ArchSpec:
    return metaformer_v2(*S18, [_SEPCONV] * 4)


@add(
    "caformer_s18",
    paper=METAFORMER2,
    families=("M15", "M01"),
    macro=("MA2", "MA4"),
    published=timm("caformer_s18", 26.34, 4.13),
    notes="LayerNorms keep their bias (timm: bias-free); no residual scale in stages 3-4",
)
def caformer_s18() -> ArchSpec:
    return metaformer_v2(*S18, [_SEPCONV, _SEPCONV, _ATTN32, _ATTN32])


@add(
    "convformer_s36",
    paper=METAFORMER2,
    families=("M15",),
    macro=("MA2",),
    published=timm("convformer_s36", 40.01, 7.67),
    notes="LayerNorms keep their bias (timm: bias-free); no residual scale",
)
def convformer_s36() -> ArchSpec:
    return metaformer_v2(*S36_V2, [_SEPCONV] * 4)


@add(
    "caformer_s36",
    paper=METAFORMER2,
    families=("M15", "M01"),
    macro=("MA2", "MA4"),
    published=timm("caformer_s36", 39.3, 8.0),
    notes="LayerNorms keep their bias (timm: bias-free); no residual scale in stages 3-4",
)
def caformer_s36() -> ArchSpec:
    return metaformer_v2(*S36_V2, [_SEPCONV, _SEPCONV, _ATTN32, _ATTN32])
