"""Isotropic (columnar) models, catalog macro MA1: one width, one token grid, patchify stem.

DeiT / ViT (Touvron et al. 2021; Dosovitskiy et al. 2021), MLP-Mixer (Tolstikhin et al. 2021),
CaiT (Touvron et al. 2021; its class-attention stage keeps the grid).
Configurations follow timm's ``vision_transformer.py``, ``mlp_mixer.py`` and ``cait.py``.
"""

from __future__ import annotations

from search_space.spec import ArchSpec
from search_space.zoo._build import block, op, spec, stage, uniform
from search_space.zoo.registry import add, timm

DEIT = "Training data-efficient image transformers & distillation through attention"
VIT = "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale"
MIXER = "MLP-Mixer: An all-MLP Architecture for Vision"
CAIT = "Going deeper with Image Transformers"


def vit(
    width: int, heads: int, depth: int = 12, patch: int = 16, resolution: int = 224
) -> ArchSpec:
    """ViT / DeiT: patch embedding, class token, learned positions, pre-LN attention + MLP 4x,
    final LayerNorm over all tokens, class-token classifier."""
    layer = block(op("attention", head_dim=width // heads, qkv_bias=True), op("mlp", ratio=4.0))
    return spec(
        op("patch_embed", patch_size=patch, cls_token=True, pos_embed="learned"),
        [uniform(width, depth, op("none"), layer)],
        op("classifier", pool="cls", norm_position="pre_pool"),
        resolution=resolution,
    )


@add(
    "deit_t",
    paper=DEIT,
    families=("M01",),
    macro=("MA1",),
    published=timm("deit_tiny_patch16_224", 5.72, 1.26),
)
def deit_t() -> ArchSpec:
    return vit(192, 3)


@add(
    "deit_s",
    paper=DEIT,
    families=("M01",),
    macro=("MA1",),
    published=timm("deit_small_patch16_224", 22.05, 4.61),
)
def deit_s() -> ArchSpec:
    return vit(384, 6)


@add(
    "deit_b",
    paper=DEIT,
    families=("M01",),
    macro=("MA1",),
    published=timm("deit_base_patch16_224", 86.57, 17.58),
)
def deit_b() -> ArchSpec:
    return vit(768, 12)


@add(
    "vit_b16",
    paper=VIT,
    families=("M01",),
    macro=("MA1",),
    published=timm("vit_base_patch16_224", 86.57, 17.58),
    notes="the same network as deit_b (DeiT-B is ViT-B/16 trained on ImageNet-1k only)",
)
def vit_b16() -> ArchSpec:
    return vit(768, 12)


@add(
    "mixer_b16",
    paper=MIXER,
    families=("M14",),
    macro=("MA1",),
    published=timm("mixer_b16_224", 59.88, 12.62),
    notes="token-MLP hidden width 384 is written as ratio 384/196 of the 14x14 grid tokens",
)
def mixer_b16() -> ArchSpec:
    tokens = (224 // 16) ** 2
    layer = block(op("token_mlp", ratio=384 / tokens), op("mlp", ratio=4.0))
    return spec(
        op("patch_embed", patch_size=16),
        [uniform(768, 12, op("none"), layer)],
        op("classifier", norm_position="pre_pool"),
    )


@add(
    "cait_xxs24",
    paper=CAIT,
    families=("M01", "M20"),
    macro=("MA1",),
    published=timm("cait_xxs24_224", 11.96, 2.53),
    notes=(
        "the self-attention blocks are plain multi-head attention: CaiT's talking-heads "
        "projections (two 4x4 linears across the heads, before and after the softmax; 960 "
        "parameters and 29.5 M MACs in all) have no op, so MACs are 1.0% under timm's"
    ),
)
def cait_xxs24() -> ArchSpec:
    # timm cait.py (cait_xxs24_224): 16x16 patches to 192, learned positions on the patch
    # tokens, 24 layer-scale blocks (4 heads, MLP 4x, init 1e-5) without a class token; then a
    # learned class token and 2 class-attention blocks (class token only, layer scale, MLP 4x);
    # LN over all tokens; classifier on the class token
    layer = block(op("attention", head_dim=48), op("mlp", ratio=4.0), layer_scale=1e-5)
    class_block = block(
        op("class_attention", head_dim=48),
        op("mlp", ratio=4.0),
        layer_scale=1e-5,
        tokens="prefix",
    )
    return spec(
        op("patch_embed", patch_size=16, pos_embed="learned"),
        [
            uniform(192, 24, op("none"), layer),
            stage(192, op("embed", class_token="learned"), [class_block] * 2),
        ],
        op("classifier", pool="cls", norm_position="pre_pool"),
    )
