"""Channel-mixer modules (the feed-forward half of a block)."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.ops.channel_mixers import hidden_width


class Mlp(nn.Module):
    """fc1 -> act -> fc2. Layout: tokens. Cost: 2 d h (+ h + d bias) params, 2 T d h MACs."""

    def __init__(self, dim: int, *, grid: tuple[int, ...], ratio: float, act: str,
                 bias: bool) -> None:
        super().__init__()
        hidden = hidden_width(dim, ratio)
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = make_activation(act)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class NoChannelMixer(nn.Module):
    """Placeholder: a block with this channel mixer has no second branch (never called)."""

    def __init__(self, dim: int, *, grid: tuple[int, ...]) -> None:
        super().__init__()
