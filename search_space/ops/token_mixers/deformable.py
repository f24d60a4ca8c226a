"""InternImage's deformable convolution DCNv3 (catalog family M18), by bilinear sampling.

"InternImage: Exploring Large-Scale Vision Foundation Models with Deformable Convolutions". The
mixer is the official ``DCNv3_pytorch`` layer; the InternImage block (LayerNorm, DCNv3, then a
LayerNorm + ratio-4 MLP) is the MetaFormer block with norm ``layernorm`` and channel mixer
``mlp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_space.ops.base import (
    LAYOUT_GRID_LAST,
    Cost,
    OpContext,
    OpDef,
    ParamDef,
    conv_cost,
    divides,
    linear_cost,
    norm_cost,
)
from search_space.ops.channel_mixers import odd
from search_space.ops.registries import register
from search_space.ops.sharing import Sharing

# MACs per sampled value: 4 for the bilinear interpolation (fvcore's ``aten::grid_sampler``
# rate) and 1 for the modulation by the mask (a batched matmul the counter sees); InternImage's own
# FLOP count uses the same 5 N K C.
SAMPLE_MACS = 5


def _deformable_cost(ctx: OpContext, params: Mapping[str, Any]) -> Cost:
    n, d, k, groups = ctx.n, ctx.dim, params["kernel"], params["groups"]
    points = k * k
    sampling = n * points * d
    return (
        linear_cost(n, d, d)  # input_proj
        + conv_cost(ctx.grid, d, d, k, groups=d)  # dw_conv (bias) ...
        + norm_cost("layernorm", n * d, d)  # ... LayerNorm, GELU
        + linear_cost(n, d, groups * points * 2)  # offsets (x, y) per group and point
        + linear_cost(n, d, groups * points)  # modulation mask, softmax over a group's points
        + Cost(
            macs=SAMPLE_MACS * sampling,
            dynamic_macs=SAMPLE_MACS * sampling,
            activations=sampling,
        )
        + linear_cost(n, d, d)  # output_proj
    )


register(
    OpDef(
        name="deformable_conv",
        sharing=Sharing(
            chunks={"input_proj.": (0, "groups"), "output_proj.": (1, "groups")},
            note="offsets pack (group, point, xy); channels keep their group",
        ),
        kind="token_mixer",
        module="search_space.nn.mixers.deformable:DeformableConv",
        family="M18",
        layout=LAYOUT_GRID_LAST,
        complexity="O(N d^2 + N G K d)",
        params=(
            ParamDef(
                "groups", int, 4, minimum=1, doc="offset groups G (InternImage-T: 4, 8, 16, 32)"
            ),
            ParamDef("kernel", int, 3, minimum=1, doc="sampling points K = kernel^2 (odd)"),
            ParamDef("offset_scale", float, 1.0, doc="scales kernel grid and learned offsets"),
        ),
        rules=(odd("kernel"), divides("groups")),
        spatial_dims=(2,),
        cost=_deformable_cost,
        examples=({"groups": 8, "kernel": 5}, {"groups": 1, "offset_scale": 2.0}),
        doc="DCNv3: per-group learned offsets and softmax mask over k x k bilinear samples",
    )
)
