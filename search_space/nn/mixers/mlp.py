"""MLP-Mixer's token-mixing MLP."""

from __future__ import annotations

import math

import torch
from torch import nn

from search_space.ops.channel_mixers import hidden_width


class TokenMlp(nn.Module):
    """Linear N -> h, GELU, linear h -> N across the grid tokens, shared by all channels.

    Resolution-locked: the weights have the grid's N = prod(grid) tokens as a dimension.
    Layout: sequence ``(B, N, C)``. Complexity O(N^2 d) (O(N h d), h = int(ratio * N)).
    Cost: params 2 N h + h + N; MACs 2 d N h.
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], ratio: float) -> None:
        super().__init__()
        tokens = math.prod(grid)
        hidden = hidden_width(tokens, ratio)
        self.fc1 = nn.Linear(tokens, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.transpose(1, 2)  # (B, C, N): the linears act along the token axis
        return self.fc2(self.act(self.fc1(y))).transpose(1, 2)
