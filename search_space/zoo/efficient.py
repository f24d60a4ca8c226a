"""Latency-oriented and convolution-embedded models: EfficientFormer (Li et al. 2022), LeViT
(Graham et al. 2021), CvT (Wu et al. 2021), UniFormer (Li et al. 2022), T2T-ViT (Yuan et al.
2021), KAT (Yang & Wang 2024)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from search_space.spec import ArchSpec, Block, Stage
from search_space.zoo._build import block, op, spec, stage
from search_space.zoo.hybrids import PASS, _cpe
from search_space.zoo.isotropic import vit
from search_space.zoo.pyramids import pyramid
from search_space.zoo.registry import add, paper, timm

EFFICIENTFORMER = "EfficientFormer: Vision Transformers at MobileNet Speed"
LEVIT = "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference"
CVT = "CvT: Introducing Convolutions to Vision Transformers"
UNIFORMER = "UniFormer: Unifying Convolution and Self-attention for Visual Recognition"
T2T = "Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet"
KAT = "Kolmogorov-Arnold Transformer"

_EF_NOTES = (
    "the 4D blocks' conv MLP has no BatchNorms (timm: BN after fc1 and fc2); the distillation "
    "head is the classifier's second head"
)


def efficientformer(depths: Sequence[int], widths: Sequence[int], num_vit: int) -> ArchSpec:
    """timm efficientformer.py: conv stem 3 -> w/2 -> w (BN, ReLU), 3x3/s2 conv + BN
    downsampling, MetaBlock4D (pool - x, conv MLP 4x, layer scale 1e-5) and, for the last
    ``num_vit`` blocks, MetaBlock3D (LN, MHSA key_dim 32 x 8 heads, attn_ratio 4 with attention
    biases, LN, MLP 4x)."""
    meta4d = block(op("pooling", pool_size=3), op("mlp", ratio=4.0), norm="none", layer_scale=1e-5)
    meta3d = block(
        op("levit_attention", key_dim=32, heads=8, attn_ratio=4.0, norm="none", act="identity"),
        op("mlp", ratio=4.0),
        layer_scale=1e-5,
    )
    last = len(depths) - 1

    def make(i: int, j: int) -> Block:
        return meta3d if i == last and j >= depths[i] - num_vit else meta4d

    return pyramid(
        op("conv_stem", num_convs=2, kernel=3, norm="batchnorm", act="relu"),
        depths,
        widths,
        op("conv", kernel=3, norm="batchnorm"),
        make,
        op("classifier", norm_position="pre_pool", distill=True),
    )


@add(
    "efficientformer_l1",
    paper=EFFICIENTFORMER,
    families=("M11", "M01"),
    macro=("MA2", "MA4"),
    published=timm("efficientformer_l1", 12.29, 1.3),
    notes=_EF_NOTES,
)
def efficientformer_l1() -> ArchSpec:
    return efficientformer((3, 2, 6, 4), (48, 96, 224, 448), 1)


@add(
    "efficientformer_l3",
    paper=EFFICIENTFORMER,
    families=("M11", "M01"),
    macro=("MA2", "MA4"),
    published=timm("efficientformer_l3", 31.41, 3.93),
    notes=_EF_NOTES,
)
def efficientformer_l3() -> ArchSpec:
    return efficientformer((4, 4, 12, 6), (64, 128, 320, 512), 4)


@add(
    "efficientformer_l7",
    paper=EFFICIENTFORMER,
    families=("M11", "M01"),
    macro=("MA2", "MA4"),
    published=timm("efficientformer_l7", 82.23, 10.17),
    notes=_EF_NOTES,
)
def efficientformer_l7() -> ArchSpec:
    return efficientformer((6, 6, 18, 8), (96, 192, 384, 768), 8)


@add(
    "levit_128",
    paper=LEVIT,
    families=("M01",),
    macro=("MA3",),
    published=timm("levit_128", 9.19, 0.41),
    notes="MLPs lack LeViT's BatchNorms after their linears",
)
def levit_128() -> ArchSpec:
    # timm levit.py (levit_128): 4 stride-2 convs to 1/16 with hardswish, stages (128, 256, 384)
    # of depth 4, key_dim 16, heads (4, 8, 12), attn_ratio 2, MLP 2x; between stages shrink
    # attention (heads = in / 16, attn_ratio 4) then a residual MLP; BN + linear (+ dist) head
    widths, heads = (128, 256, 384), (4, 8, 12)
    mlp = block(op("none"), op("mlp", ratio=2.0, act="hardswish"), norm="none")
    stages = []
    for i, (w, h) in enumerate(zip(widths, heads, strict=True)):
        attn = block(
            op("levit_attention", key_dim=16, heads=h, attn_ratio=2.0), op("none"), norm="none"
        )
        blocks = [attn, mlp] * 4
        down = op("none")
        if i:
            down = op("attention_subsample", key_dim=16, heads=widths[i - 1] // 16, attn_ratio=4.0)
            blocks = [mlp, *blocks]
        stages.append(stage(w, down, blocks))
    return spec(
        op(
            "conv_stack",
            widths=[16, 32, 64],
            strides=[2, 2, 2, 2],
            kernels=[3, 3, 3, 3],
            act="hardswish",
            final_act=False,
        ),
        stages,
        op("classifier", norm="batchnorm", distill=True),
    )


@add(
    "cvt_13",
    paper=CVT,
    families=("M01", "M15"),
    macro=("MA3",),
    published=paper(
        20, 4.5, "microsoft/CvT README, ImageNet-1k table (CvT-13, 224: 20M, 4.5 GFLOPs)"
    ),
    notes="the class token CvT adds in stage 3 is left out (global average pooling instead)",
)
def cvt_13() -> ArchSpec:
    # microsoft/CvT cvt-13-224x224.yaml: conv token embeddings 7/4, 3/2, 3/2 with LN, depths
    # [1, 2, 10], widths [64, 192, 384], heads [1, 3, 6] (head_dim 64), MLP 4x, depthwise
    # 3x3 conv projections with stride-2 keys and values
    depths, widths = (1, 2, 10), (64, 192, 384)
    layer = block(op("conv_attention", kernel=3, stride_kv=2, head_dim=64), op("mlp", ratio=4.0))
    stages = [
        stage(w, op("none") if i == 0 else op("conv", kernel=3, norm="layernorm"), [layer] * d)
        for i, (d, w) in enumerate(zip(depths, widths, strict=True))
    ]
    return spec(
        op("patch_embed", patch_size=7, stride=4, padding=2, norm="layernorm"),
        stages,
        op("classifier"),
    )


@add(
    "uniformer_s",
    paper=UNIFORMER,
    families=("M15", "M01"),
    macro=("MA2", "MA4"),
    published=paper(
        22, 3.6, "Sense-X/UniFormer image_classification README (UniFormer-S: 22M, 3.6G)"
    ),
    notes="the dynamic position embedding (3x3 dwconv) is its own residual block before each block",
)
def uniformer_s() -> ArchSpec:
    # Sense-X/UniFormer uniformer.py (uniformer_small): local MHRA (5x5 depthwise affinity between
    # 1x1 convs, BN) in stages 1-2, global MHSA (head_dim 64, LN) in 3-4, MLP 4x, patch-embedding
    # downsampling (conv + LN), BN before pooling
    local = block(
        op("sepconv", expansion=1.0, act="identity", kernel=5, bias=True),
        op("mlp", ratio=4.0),
        norm="batchnorm",
    )
    glob = block(op("attention", head_dim=64), op("mlp", ratio=4.0))

    def make(i: int, j: int) -> Block:
        return _cpe() if j % 2 == 0 else (local if i < 2 else glob)

    return pyramid(
        op("patch_embed", patch_size=4, norm="layernorm"),
        (6, 8, 16, 6),
        (64, 128, 320, 512),
        op("conv", kernel=2, norm="layernorm"),
        make,
        op("classifier", norm="batchnorm", norm_position="pre_pool"),
    )


@add(
    "t2t_vit_14",
    paper=T2T,
    families=("M01", "M07"),
    macro=("MA1", "MA12"),
    published=paper(
        21.5,
        4.8,
        "T2T-ViT README (21.5M); 4.8 G as T2T-ViT-14's MACs in later papers' tables (DVT)",
    ),
)
def t2t_vit_14() -> ArchSpec:
    # yitu-opensource/T2T-ViT t2t_vit_14: soft split 7/4, 3/2, 3/2 with performer T2T layers
    # (token_dim 64), backbone depth 14, width 384, 6 heads, MLP 3x, class token, sinusoid PE
    layer = block(op("attention", head_dim=64), op("mlp", ratio=3.0))
    return spec(
        op("soft_split", token_dim=64, mixer="performer", cls_token=True, pos_embed="sinusoidal"),
        [stage(384, op("none"), [layer] * 14)],
        op("classifier", pool="cls", norm_position="pre_pool"),
    )


@add(
    "kat_s",
    paper=KAT,
    families=("M01", "M22"),
    macro=("MA1",),
    published=paper(22.1, None, "KAT README (KAT-S 22.1M); MACs not published there"),
)
def kat_s() -> ArchSpec:
    # Adamdad/kat katransformer.py: ViT-S/16 with GR-KAN feed-forward layers (8 rational groups,
    # orders 5/4, first rational identity-initialised, second swish-initialised)
    base = vit(384, 6)
    kan = op("kan", ratio=4.0, groups=8, num_order=5, den_order=4, init="swish")
    layer = block(base.blocks[0].token_mixer, kan)
    return base.replace(stages=(stage(384, op("none"), [layer] * 12),))


NEXTVIT = (
    "Next-ViT: Next Generation Vision Transformer for Efficient Deployment in Realistic "
    "Industrial Scenarios"
)


@add(
    "nextvit_s",
    paper=NEXTVIT,
    families=("M15", "M05", "M01"),
    macro=("MA2", "MA4", "MA6"),
    published=timm("nextvit_small", 31.74, 5.8),
    notes=(
        "a width change inside a stage starts a spec stage (1x1 conv + BN, or 2x2 average "
        "pooling + projection at stride 2); E-MHSA is pooled-KV attention with every head "
        "Lo-Fi (its BatchNorm after pooling left out); the NTB's MHCA branch is a 'grow' "
        "downsampler (1x1 projection + BN, concatenated) and an MHCA block on the new channels"
    ),
)
def nextvit_s() -> ArchSpec:
    # timm nextvit.py (nextvit_small): depths (3, 4, 10, 3); NCB = x + MHCA(x), x + MLP 3x(BN(x));
    # NTB (every 5th block of stage 3, last of stages 2 and 4) = x + E-MHSA(BN(x)) on 3/4 of
    # the width, a projected 1/4 with x + MHCA, concatenated, then x + MLP 2x(BN(x));
    # sr_ratios (8, 4, 2, 1), head_dim 32
    mhca = block(op("mhca", head_dim=32, kernel=3), op("none"), norm="none")
    ncb = [mhca, block(op("none"), op("mlp", ratio=3.0, act="relu"), norm="batchnorm")]
    mlp2 = block(op("none"), op("mlp", ratio=2.0, act="relu"), norm="batchnorm")
    conv1x1 = op("conv", kernel=1, stride=1, norm="batchnorm")

    def ntb(mhsa: int, out: int, sr: int) -> list[Stage]:
        attn = op("hilo_attention", head_dim=32, alpha=1.0, window=sr)
        tail = dataclasses.replace(mhca, channels=(mhsa, out))
        return [
            stage(mhsa, op("none"), [block(attn, op("none"), norm="batchnorm")]),
            stage(out, op("grow"), [tail, mlp2]),
        ]

    # the stem's 64 channels enter stage 1 through a 1x1 conv + BN (NCB patch embedding)
    stages = [stage(64, op("none"), [PASS]), stage(96, conv1x1, ncb * 3)]
    stages += [stage(192, op("pool"), ncb * 3), *ntb(192, 256, 4)]
    stages += [stage(384, op("pool"), ncb * 4), *ntb(384, 512, 2)]
    stages += [stage(384, conv1x1, ncb * 4), *ntb(384, 512, 2)]
    stages += [stage(768, op("pool"), ncb * 2), *ntb(768, 1024, 1)]
    # ntb() opens with a stage at the E-MHSA width; where that equals the previous width the
    # stage's downsampler is 'none' (Next-ViT needs no patch embedding there)
    return spec(
        op("conv_stack", widths=[64, 32, 64], strides=[2, 1, 1, 2], kernels=[3, 3, 3, 3]),
        stages,
        op("classifier", norm="batchnorm", norm_position="pre_pool"),
    )
