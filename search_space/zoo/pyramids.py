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


def swin_like(mixer: Callable[[int, int], Op], channel: Op | None = None) -> ArchSpec:
    """The Swin-T macro with a per-block token mixer: 4x4 patch embedding with LN, patch
    merging, LN before global average pooling."""
    ffn = channel or op("mlp", ratio=4.0)
    return pyramid(
        op("patch_embed", patch_size=4, norm="layernorm"),
        *SWIN_T,
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
    layer = block(op("dwconv", kernel=7), op("mlp", ratio=4.0), layer_scale=1e-6)
    return pyramid(
        op("patch_embed", patch_size=4, norm="layernorm"),
        (3, 3, 9, 3),
        (96, 192, 384, 768),
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
        "the shift sits in a pre-norm residual branch, x + shift(GN(x)); ShiftViT shifts x in "
        "place (one GroupNorm and its 2C parameters more per block); patch merging norms the 4C "
        "concatenation where ShiftViT norms C before a 2x2 conv"
    ),
)
def shiftvit_t() -> ArchSpec:
    # shiftvit_r2_tiny: GroupNorm(1) everywhere (the repo's default 'GN1'), MLP ratio 2
    layer = block(op("shift", n_div=12), op("mlp", ratio=2.0), norm="groupnorm")
    return pyramid(
        op("patch_embed", patch_size=4, norm="groupnorm"),
        (6, 8, 18, 6),
        (96, 192, 384, 768),
        op("patch_merging", norm="groupnorm"),
        lambda i, j: layer,
        op("classifier", norm="groupnorm", norm_position="pre_pool"),
    )
