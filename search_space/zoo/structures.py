"""Models whose macro structure needs the spec language's structural fields: recursive weight
sharing (SReT), nested prefixes (MatFormer), interleaved local/global latent layers (FIT) and a
U-Net encoder-decoder with skips (Attention U-Net / U-Net Transformer template)."""

from __future__ import annotations

from search_space.spec import ArchSpec, Block, Latents, Skip, Stage
from search_space.zoo._build import block, op, spec, stage
from search_space.zoo.isotropic import vit
from search_space.zoo.registry import add, paper, unpublished

SRET = "Sliced Recursive Transformer"
MATFORMER = "MatFormer: Nested Transformer for Elastic Inference"
FIT = "FIT: Far-reaching Interleaved Transformers"
UNET = "Attention U-Net: Learning Where to Look for the Pancreas"

# x + MLP(LN(x)): SReT's non-shared projection layer between recursions
_NLL = Block(op("none"), op("mlp", ratio=2.0))


@add(
    "sret_s",
    paper=SRET,
    families=("M01",),
    macro=("MA3", "MA9"),
    published=paper(20.9, 4.7, "SReT README, SReT-S without slicing (4.2 G with slicing)"),
    notes=(
        "SReT-S without sliced group attention (the README's unsliced SReT-S; slicing needs a "
        "grouped-attention option the attention op lacks). Each unique block runs twice, the "
        "second application sharing its weights, with a non-shared x + MLP(LN(x)) projection "
        "after each; the stem's third conv is the first stage's conv downsampler; the depthwise "
        "conv head pooling is 2x2 average pooling plus a pointwise projection; no position "
        "embedding"
    ),
)
def sret_s() -> ArchSpec:
    # szq0214/SReT SReT.py (SReT_S): base_dim 42, heads [3, 6, 12], depth [4, 10, 6],
    # recursive_num [2, 5, 3] (each unique block looped twice), MLP 3x, NLL MLP 2x
    widths, unique = (126, 252, 504), (2, 5, 3)
    stages = []
    for i, (w, r) in enumerate(zip(widths, unique, strict=True)):
        layer = block(op("attention", head_dim=42), op("mlp", ratio=3.0))
        blocks: list[Block] = []
        for _ in range(r):
            first = len(blocks)
            blocks += [
                layer,
                _NLL,
                Block(layer.token_mixer, layer.channel_mixer, share=first),
                _NLL,
            ]
        down = op("conv", kernel=3, norm="batchnorm") if i == 0 else op("pool")
        stages.append(stage(w, down, blocks))
    return spec(
        op("conv_stem", num_convs=2, kernel=3, hidden=63, norm="batchnorm", act="relu"),
        stages,
        op("classifier"),
    )


@add(
    "matvit_b16",
    paper=MATFORMER,
    families=("M01",),
    macro=("MA1", "MA10"),
    published=unpublished(why="the MatFormer abstract reports MatLM sizes, not MatViT's"),
    notes="MatViT-B/16 at granularity S (hidden 384 of 3072 stored); siblings M/L/XL nest",
)
def matvit_b16() -> ArchSpec:
    # google-research/scenic MatViT: ViT-B/16 whose FFN hidden layer nests prefixes
    # {384, 768, 1536, 3072}; one checkpoint, granularity chosen per layer (Mix'n'Match)
    base = vit(768, 12)
    layers = tuple(
        Block(b.token_mixer, op("mlp", ratio=0.5), nested_ratio=4.0) for b in base.blocks
    )
    return base.replace(stages=(Stage(768, base.stages[0].downsample, layers),))


@add(
    "fit_template",
    paper=FIT,
    families=("M02", "M20"),
    macro=("MA8",),
    published=unpublished(256, "template: the paper's abstract gives structure, not sizes"),
    notes="pattern (2)4(2): 2 local (window) layers, 4 global latent layers, 2 local layers",
)
def fit_template() -> ArchSpec:
    # FIT: data tokens in 8x8 groups, 8 latents per group; local layers attend within a group,
    # global layers attend over all latents; cross-attention reads and writes per group
    local = block(
        op("window_attention", window=8, head_dim=64, rel_pos_bias=False), op("mlp", ratio=4.0)
    )
    glob = Block(op("attention", head_dim=64), op("mlp", ratio=4.0), scope="latent")
    blocks = (local, local, glob, glob, glob, glob, local, local)
    return spec(
        op("patch_embed", patch_size=8, pos_embed="learned"),
        [Stage(384, op("none"), blocks, latents=Latents(tokens=8, group=8, head_dim=64))],
        op("classifier"),
        resolution=256,
    )


@add(
    "unet_template",
    paper=UNET,
    families=("M15", "M01", "M23"),
    macro=("MA7",),
    published=unpublished(256, "template: seed abstracts give structure, not sizes"),
    notes=(
        "4-level encoder (64-512) with a 1024-wide MHSA bottleneck, decoder with 2x2 "
        "up-convolutions and concatenated skips; blocks are residual MBConv (depthwise, SE "
        "channel attention) instead of plain 3x3 convs; a segmentation head (per-pixel logits "
        "upsampled from the stem's stride 2 to the input's resolution)"
    ),
)
def unet_template() -> ArchSpec:
    conv = block(op("mbconv", expand=4.0, kernel=3, se_ratio=0.25), op("none"), norm="batchnorm")
    enc = (64, 128, 256, 512)
    stages = [
        stage(w, op("none") if i == 0 else op("conv", kernel=2, norm="batchnorm"), [conv, conv])
        for i, w in enumerate(enc)
    ]
    bottleneck = block(op("attention", head_dim=64), op("mlp", ratio=4.0))
    stages.append(stage(1024, op("conv", kernel=2, norm="batchnorm"), [bottleneck, bottleneck]))
    for i, w in reversed(list(enumerate(enc))):
        stages.append(Stage(w, op("upsample", factor=2), (conv, conv), skip=Skip(i, "concat")))
    return spec(
        op("conv_stem", num_convs=1, kernel=3, norm="batchnorm", act="relu"),
        stages,
        op("seg_head", norm="batchnorm"),
        resolution=256,
        num_classes=2,
    )
