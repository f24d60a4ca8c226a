"""Downsampler modules built from mobile convolution blocks (see
`search_space.ops.mobile_downsample`)."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.convs import avg_pool_nd, conv_nd
from search_space.nn.downsample import _Downsample
from search_space.nn.layout import grid_to_tokens
from search_space.nn.mixers.mbconv import MBConvBody
from search_space.nn.norms import ChannelsFirstNorm


class MBConvDownsample(_Downsample):
    """MaxViT's stride-2 MBConv: ``pool_shortcut(x) + body(pre_norm(x))``.

    The shortcut is 2x2 average pooling (ceil mode, padding not counted) then a 1x1 conv with bias
    when the width changes; the body is `MBConvBody` with its depthwise conv at stride 2 and the
    block's pre-norm ``norm`` (no activation) in front.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        prefix: int,
        expand: float,
        kernel: int,
        se_ratio: float,
        act: str,
        se_act: str,
        norm: str,
        out_norm: bool,
    ) -> None:
        super().__init__(dim, out_dim, grid, prefix)
        rank = len(grid)
        self.pool = avg_pool_nd(rank, 2, 2, ceil_mode=True, count_include_pad=False)
        self.expand = conv_nd(rank, dim, out_dim, 1) if dim != out_dim else nn.Identity()
        self.pre_norm = ChannelsFirstNorm(norm, dim)
        self.body = MBConvBody(
            rank,
            dim,
            out_dim,
            stride=2,
            expand=expand,
            kernel=kernel,
            se_ratio=se_ratio,
            act=act,
            se_act=se_act,
            norm=norm,
            out_norm=out_norm,
        )

    def downsample(self, grid: torch.Tensor) -> torch.Tensor:
        return grid_to_tokens(self.expand(self.pool(grid)) + self.body(self.pre_norm(grid)))
