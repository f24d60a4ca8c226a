"""NAS-Bench-201's layers: ReLU-conv-BN and the stride-2 ResNet basic block (its reduction)."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.convs import avg_pool_nd, conv_nd
from search_space.nn.downsample import _Downsample
from search_space.nn.layout import grid_to_tokens

_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class ReLUConvBN(nn.Sequential):
    """NAS-Bench-201's ``ReLUConvBN``: ReLU, convolution without bias, affine batch norm.

    Padding ``kernel // 2`` (NAS-Bench-201 uses kernels 1 and 3, dilation 1).
    """

    def __init__(self, rank: int, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            conv_nd(rank, c_in, c_out, kernel, stride, kernel // 2, bias=False),
            _BATCH_NORM[rank](c_out),
        )


class ResNetBasic(_Downsample):
    """NAS-Bench-201's ``ResNetBasicblock(C_in, C_out, stride=2)``.

    ``shortcut(x) + conv_b(conv_a(x))``: ``conv_a`` = ReLUConvBN(3x3, stride 2), ``conv_b`` =
    ReLUConvBN(3x3), ``shortcut`` = 2x2 average pooling (stride 2, ceil mode for odd grids) and a
    1x1 conv without bias.
    Layout: grid (via the downsampler base, prefix tokens projected). Cost: params
    9 C_in C_out + 9 C_out^2 + C_in C_out + 4 C_out; MACs N' times the conv weights plus 4 N' C_out
    for the two batch norms (N' = cells of the halved grid).
    """

    def __init__(self, dim: int, out_dim: int, *, grid: tuple[int, ...], prefix: int) -> None:
        super().__init__(dim, out_dim, grid, prefix)
        rank = len(grid)
        self.conv_a = ReLUConvBN(rank, dim, out_dim, 3, stride=2)
        self.conv_b = ReLUConvBN(rank, out_dim, out_dim, 3)
        self.shortcut = nn.Sequential(
            avg_pool_nd(rank, 2, 2, ceil_mode=True, count_include_pad=False),
            conv_nd(rank, dim, out_dim, 1, bias=False),
        )

    def downsample(self, grid: torch.Tensor) -> torch.Tensor:
        return grid_to_tokens(self.shortcut(grid) + self.conv_b(self.conv_a(grid)))
