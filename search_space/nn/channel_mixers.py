"""Channel-mixer modules (the feed-forward half of a block)."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.convs import conv_nd
from search_space.ops.channel_mixers import hidden_width


class Mlp(nn.Module):
    """fc1 -> act -> fc2. Layout: tokens. Cost: 2 d h (+ h + d bias) params, 2 T d h MACs."""

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], ratio: float, act: str, bias: bool
    ) -> None:
        super().__init__()
        hidden = hidden_width(dim, ratio)
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = make_activation(act)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class GluMlp(nn.Module):
    """Gated linear unit: ``fc2(value * act(gate))`` with ``[value, gate] = fc1(x)`` (SwiGLU).

    Layout: tokens. Complexity O(T d h). h = int(ratio * d).
    Cost: params 3 d h (+ 2h + d bias); MACs 3 T d h (fc1 d -> 2h, fc2 h -> d; gating is free).
    """

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], ratio: float, act: str, bias: bool
    ) -> None:
        super().__init__()
        hidden = hidden_width(dim, ratio)
        self.fc1 = nn.Linear(dim, 2 * hidden, bias=bias)  # value and gate in one matmul
        self.act = make_activation(act)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(value * self.act(gate))


class ConvFfn(nn.Module):
    """fc1 -> depthwise k^r conv over the grid -> act -> fc2 (PVTv2 / LITv2 ConvFFN).

    Layout: grid_last ``(B, *grid, C)``, so prefix (class) tokens get a zero update from this
    branch. Complexity O(N d h + N h k^r) for a rank-r grid; h = int(ratio * d).
    Cost: params 2 d h + h k^r (+ 2h + d bias); MACs N (2 d h + h k^r).
    """

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], ratio: float, act: str, kernel: int, bias: bool
    ) -> None:
        super().__init__()
        hidden = hidden_width(dim, ratio)
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.dwconv = conv_nd(
            len(grid), hidden, hidden, kernel, padding=kernel // 2, groups=hidden, bias=bias
        )
        self.act = make_activation(act)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc1(x).movedim(-1, 1)  # channels-first for the convolution
        y = self.dwconv(y).movedim(1, -1)
        return self.fc2(self.act(y))


class NoChannelMixer(nn.Module):
    """Placeholder: a block with this channel mixer has no second branch (never called)."""

    def __init__(self, dim: int, *, grid: tuple[int, ...]) -> None:
        super().__init__()
