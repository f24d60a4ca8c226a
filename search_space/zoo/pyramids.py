"""Hierarchical 4-stage pyramids (catalog macro MA2) built from windowed attention, convolution,
shift and large-kernel mixers: Swin, ConvNeXt, ShiftViT, VAN."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from search_space.spec import ArchSpec, Block, Op
from search_space.zoo._build import block, op, spec, stage
from search_space.zoo.registry import add, paper, timm

SWIN = "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"
CONVNEXT = "A ConvNet for the 2020s"
SHIFTVIT = (
    "When Shift Operation Meets Vision Transformer: An Extremely Simple Alternative to "
    "Attention Mechanism"
)

SWIN_T = ((2, 2, 6, 2), (96, 192, 384, 768))


def pyramid(
    stem: Op,
    depths: Sequence[int],
    widths: Sequence[int],
    downsample: Op,
    make: Callable[[int, int], Block],
    head: Op,
) -> ArchSpec:
    """Four stages; ``make(stage, index)`` gives each block; ``downsample`` enters stages 2-4."""
    stages = [
        stage(w, op("none") if i == 0 else downsample, [make(i, j) for j in range(d)])
        for i, (d, w) in enumerate(zip(depths, widths, strict=True))
    ]
    return spec(stem, stages, head)


def swin_like(
    mixer: Callable[[int, int], Op],
    channel: Op | None = None,
    cfg: tuple[tuple[int, ...], tuple[int, ...]] = SWIN_T,
) -> ArchSpec:
    """The Swin macro (Swin-T by default) with a per-block token mixer: 4x4 patch embedding
    with LN, patch merging, LN before global average pooling."""
    ffn = channel or op("mlp", ratio=4.0)
    return pyramid(
        op("patch_embed", patch_size=4, norm="layernorm"),
        *cfg,
        op("patch_merging"),
        lambda i, j: block(mixer(i, j), ffn),
        op("classifier", norm_position="pre_pool"),
    )


@add(
    "swin_t",
    paper=SWIN,
    families=("M02",),
    macro=("MA2", "MA8"),
    published=timm("swin_tiny_patch4_window7_224", 28.29, 4.51),
)
def swin_t() -> ArchSpec:
    # W-MSA and SW-MSA alternate; the 7x7 last stage is one window, so its shift is a no-op
    return swin_like(lambda i, j: op("window_attention", window=7, shift=j % 2 == 1))


@add(
    "convnext_t",
    paper=CONVNEXT,
    families=("M15",),
    macro=("MA2",),
    published=timm("convnext_tiny", 28.59, 4.47),
)
def convnext_t() -> ArchSpec:
    return convnext((3, 3, 9, 3))


@add(
    "convnext_s",
    paper=CONVNEXT,
    families=("M15",),
    macro=("MA2",),
    published=timm("convnext_small", 50.22, 8.71),
)
def convnext_s() -> ArchSpec:
    return convnext((3, 3, 27, 3))


@add(
    "swin_s",
    paper=SWIN,
    families=("M02",),
    macro=("MA2", "MA8"),
    published=timm("swin_small_patch4_window7_224", 49.61, 8.77),
)
def swin_s() -> ArchSpec:
    return swin_like(
        lambda i, j: op("window_attention", window=7, shift=j % 2 == 1),
        cfg=((2, 2, 18, 2), (96, 192, 384, 768)),
    )


def convnext(depths: tuple[int, ...], widths: tuple[int, ...] = (96, 192, 384, 768)) -> ArchSpec:
    """timm convnext.py: 4x4/s4 stem + LN, blocks 7x7 dwconv -> LN -> MLP 4x with layer scale
    1e-6, LN + 2x2/s2 conv downsampling, GAP + LN head."""
    layer = block(op("dwconv", kernel=7), op("mlp", ratio=4.0), layer_scale=1e-6)
    return pyramid(
        op("patch_embed", patch_size=4, norm="layernorm"),
        depths,
        widths,
        op("conv", kernel=2, norm="layernorm", norm_position="pre"),
        lambda i, j: layer,
        op("classifier"),
    )


@add(
    "shiftvit_t",
    paper=SHIFTVIT,
    families=("M13",),
    macro=("MA2",),
    published=paper(29, 4.5, "SPACH README, Shift-T (shiftvit_r2_tiny)"),
    notes=(
        "each ShiftViT block is two spec blocks: the in-place shift (no norm, no residual) and "
        "x + MLP(GN(x)); patch merging norms the 4C concatenation where ShiftViT norms C "
        "before a 2x2 conv"
    ),
)
def shiftvit_t() -> ArchSpec:
    # shiftvit_r2_tiny: GroupNorm(1) everywhere (the repo's default 'GN1'), MLP ratio 2
    shift = Block(op("shift", n_div=12), op("none"), norm="none", residual=False)
    ffn = block(op("none"), op("mlp", ratio=2.0), norm="groupnorm")
    return pyramid(
        op("patch_embed", patch_size=4, norm="groupnorm"),
        (12, 16, 36, 12),
        (96, 192, 384, 768),
        op("patch_merging", norm="groupnorm"),
        lambda i, j: (shift, ffn)[j % 2],
        op("classifier", norm="groupnorm", norm_position="pre_pool"),
    )


DAVIT = "DaViT: Dual Attention Vision Transformers"


@add(
    "davit_t",
    paper=DAVIT,
    families=("M02", "M23"),
    macro=("MA2", "MA8"),
    published=timm("davit_tiny", 28.36, 4.54),
    notes=(
        "each DaViT block is four spec blocks: 3x3 position encoding (x + dwconv(x)), attention, "
        "position encoding, MLP"
    ),
)
def davit_t() -> ArchSpec:
    # timm davit.py (davit_tiny): 7x7/s4 stem + LN, depths (1, 1, 3, 1) of (spatial window,
    # channel group) block pairs, heads (3, 6, 12, 24) = head_dim 32, window 7, MLP 4x,
    # LN + 2x2/s2 conv downsampling, GAP + LN head
    cpe = block(op("dwconv", kernel=3), op("none"), norm="none")
    ffn = block(op("none"), op("mlp", ratio=4.0))
    spatial = block(op("window_attention", window=7, head_dim=32, rel_pos_bias=False), op("none"))
    channel = block(op("channel_attention", head_dim=32, style="davit"), op("none"))
    pair = [cpe, spatial, cpe, ffn, cpe, channel, cpe, ffn]
    return pyramid(
        op("patch_embed", patch_size=7, stride=4, padding=3, norm="layernorm"),
        (8, 8, 24, 8),
        (96, 192, 384, 768),
        op("conv", kernel=2, norm="layernorm", norm_position="pre"),
        lambda i, j: pair[j % 8],
        op("classifier"),
    )
