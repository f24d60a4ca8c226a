"""PAN's SC-PA token mixer; see `search_space.ops.token_mixers.pixel_attention`."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.activations import LeakyReLU


class SelfCalibratedPixelAttention(nn.Module):
    """Two half-width branches (plain conv; pixel-attention conv), concatenated, merged 1x1.

    Layout: grid ``(B, C, H, W)``. Cost: params 2 d g + g^2 k^2 + (g^2 + g) + 2 g^2 k^2 + 2 g d
    with g = d / reduction; MACs those weights (bias aside) times N.
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], reduction: int, kernel: int) -> None:
        super().__init__()
        del grid
        g, pad = dim // reduction, kernel // 2
        self.split_plain = nn.Conv2d(dim, g, 1, bias=False)
        self.split_attend = nn.Conv2d(dim, g, 1, bias=False)
        self.plain = nn.Conv2d(g, g, kernel, padding=pad, bias=False)
        self.gate = nn.Conv2d(g, g, 1)
        self.attend = nn.Conv2d(g, g, kernel, padding=pad, bias=False)
        self.attend_out = nn.Conv2d(g, g, kernel, padding=pad, bias=False)
        self.merge = nn.Conv2d(2 * g, dim, 1, bias=False)
        self.act = LeakyReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(self.split_plain(x))
        b = self.act(self.split_attend(x))
        a = self.plain(a)
        b = self.attend_out(self.attend(b) * torch.sigmoid(self.gate(b)))
        return self.merge(torch.cat([self.act(a), self.act(b)], dim=1))
