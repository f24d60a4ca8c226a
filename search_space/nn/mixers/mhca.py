"""Next-ViT's multi-head convolutional attention, "Next-ViT: Next Generation Vision Transformer
for Efficient Deployment in Realistic Industrial Scenarios" (official ``MHCA``)."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.convs import conv_nd
from search_space.nn.norms import ChannelsFirstNorm


class MultiHeadConvAttention(nn.Module):
    """``proj(relu(BN(grouped_conv(x))))``: a k^r conv with d / head_dim groups (each head mixes
    its own head_dim channels over the neighbourhood), then a 1x1 projection across heads.

    Layout: grid ``(B, C, *grid)``. Complexity O(N d h_d k^r + N d^2).
    Cost: params d h_d k^r + 2d + d^2; MACs N (d h_d k^r + 2d + d^2).
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], head_dim: int, kernel: int) -> None:
        super().__init__()
        rank = len(grid)
        self.group_conv = conv_nd(
            rank, dim, dim, kernel, padding=kernel // 2, groups=dim // head_dim, bias=False
        )
        self.norm = ChannelsFirstNorm("batchnorm", dim)
        self.projection = conv_nd(rank, dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(torch.relu(self.norm(self.group_conv(x))))
