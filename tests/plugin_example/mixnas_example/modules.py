"""The plug-in's `torch.nn.Module`s (imported only when a model is built)."""

from __future__ import annotations

import torch
from torch import nn


class DepthwiseGate(nn.Module):
    """Gates each channel by a depthwise convolution of its neighbourhood.

    Layout ``grid`` (B, C, *grid), 1-D or 2-D; O(N d k^2); cost: the depthwise convolution,
    d k^rank + d parameters and N d k^rank MACs.
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], kernel: int) -> None:
        super().__init__()
        conv = nn.Conv2d if len(grid) == 2 else nn.Conv1d
        self.conv = conv(dim, dim, kernel, padding=kernel // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))
