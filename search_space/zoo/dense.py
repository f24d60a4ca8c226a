"""Dense-prediction models of the seed papers: super-resolution (PAN) and a segmentation
pyramid with SegFormer's all-MLP decoder (DAFormer's template)."""

from __future__ import annotations

from search_space.spec import ArchSpec, Block
from search_space.zoo._build import op, spec, stage
from search_space.zoo.registry import add, paper, unpublished

PAN = "Efficient Image Super-Resolution Using Pixel Attention"
DAFORMER = (
    "DAFormer: Improving Network Architectures and Training Strategies for Domain-Adaptive "
    "Semantic Segmentation"
)


@add(
    "pan_x4",
    paper=PAN,
    families=("M23",),
    macro=("MA1",),
    published=paper(0.272, None, "abstract: 'only 272K parameters' (x4)", resolution=64),
    notes=(
        "PAN x4: a 3x3 conv to 40 channels, 16 SC-PA blocks, a 3x3 trunk conv added to the "
        "shallow features, two U-PA steps (nearest x2, conv to 24, pixel attention, conv) and a "
        "conv to RGB, plus the bilinear upsampling of the input; 64x64 is the x4 training patch"
    ),
)
def pan_x4() -> ArchSpec:
    # zhaohengyuan1/PAN, PAN(in_nc=3, out_nc=3, nf=40, unf=24, nb=16, scale=4): SCPA blocks of
    # reduction 2 with LeakyReLU(0.2); 272,419 parameters
    scpa = Block(op("scpa", reduction=2, kernel=3), op("none"), norm="none")
    return spec(
        op("patch_embed", patch_size=3, stride=1, padding=1),
        [stage(40, op("none"), [scpa] * 16)],
        op(
            "sr_head",
            scale=4,
            upsampler="nearest_conv",
            hidden=24,
            body_conv=True,
            pixel_attention=True,
            image_skip="bilinear",
        ),
        resolution=64,
        num_classes=3,
    )


@add(
    "daformer_template",
    paper=DAFORMER,
    families=("M05",),
    macro=("MA2", "MA7"),
    published=unpublished(512, "the abstract names MiT-B5 and its decoder but no sizes"),
    notes=(
        "a Mix-Transformer pyramid (overlapping patch embeddings, spatial-reduction attention, "
        "MLP with depthwise conv) at MiT-B0 widths and depths with SegFormer's all-MLP "
        "decoder (every stage projected to 256, upsampled to 1/4, fused); DAFormer's "
        "context-aware fusion (dilated depthwise ASPP) is not expressed; 19 classes (Cityscapes)"
    ),
)
def daformer_template() -> ArchSpec:
    # NVlabs/SegFormer mix_transformer.py (mit_b0): widths 32-256, heads 1/2/5/8 (head_dim 32),
    # sr_ratios 8/4/2/1, depths 2 each, Mix-FFN ratio 4; decoder embedding 256
    widths, ratios = (32, 64, 160, 256), (8, 4, 2, 1)
    stages = []
    for i, (w, r) in enumerate(zip(widths, ratios, strict=True)):
        layer = Block(op("sr_attention", sr_ratio=r, head_dim=32), op("conv_ffn", ratio=4.0))
        down = op("none") if i == 0 else op("conv", kernel=3, norm="layernorm")
        stages.append(stage(w, down, [layer, layer]))
    return spec(
        op("patch_embed", patch_size=7, stride=4, padding=3, norm="layernorm"),
        stages,
        op("seg_head", fuse="all", hidden=256, norm="batchnorm", act="relu"),
        resolution=512,
        num_classes=19,
    )
