"""HorNet's recursive gated convolution, "HorNet: Efficient High-Order Spatial Interactions with
Recursive Gated Convolutions" (official ``gnconv`` and ``GlobalLocalFilter``)."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.convs import conv_nd
from search_space.nn.mixers.spectral import GlobalFilter
from search_space.nn.norms import ChannelsFirstNorm
from search_space.ops.token_mixers.gnconv import gnconv_dims


class GlobalLocalFilter(nn.Module):
    """HorNet-GF's spatial filter: LayerNorm; first half of the channels through a k^r depthwise
    conv (no bias), second half through a GFNet global filter; halves interleaved channel by
    channel (as the official ``cat(...).reshape``); LayerNorm.

    Cost: params 4 c + (c/2) k^r + 2 F (c/2), F the rfft grid; MACs 10 N c + N (c/2) k^r +
    2 (c/2) N log2 N.
    """

    def __init__(self, channels: int, *, grid: tuple[int, ...], kernel: int) -> None:
        super().__init__()
        half = channels // 2
        self.pre_norm = ChannelsFirstNorm("layernorm", channels)
        self.dw = conv_nd(
            len(grid), half, half, kernel, padding=kernel // 2, groups=half, bias=False
        )
        self.spectral = GlobalFilter(half, grid=grid)
        self.post_norm = ChannelsFirstNorm("layernorm", channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local, rest = self.pre_norm(x).chunk(2, dim=1)
        mixed = torch.stack([self.dw(local), self.spectral(rest)], dim=2)
        return self.post_norm(mixed.flatten(1, 2))


class GnConv(nn.Module):
    """g^n Conv: ``[p_0, q] = proj_in(x)``; ``g_0..g_{n-1} = scale * dw(q)`` split by channels
    ``d/2^(n-1), ..., d``; ``p_{k+1} = pw_k(p_k) * g_{k+1}`` with ``p_0 * g_0`` first;
    ``proj_out(p_n)``. Order 1 is a plain gated convolution ``proj_out(a * dw(b))``.

    Layout: grid ``(B, C, *grid)``. Complexity O(N d^2 + N d k^r).
    Cost (dwconv filter): params 2d^2 + 2d + S (k^r + 1) + sum_k (c_k c_{k+1} + c_{k+1}) + d^2 + d,
    S = sum of the order widths c_k; MACs N (3 d^2 + S k^r + sum_k c_k c_{k+1}).
    """

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], order: int, kernel: int, scale: float, filter: str
    ) -> None:
        super().__init__()
        rank = len(grid)
        self.dims = gnconv_dims(dim, order)
        spread = sum(self.dims)
        self.proj_in = conv_nd(rank, dim, 2 * dim, 1)
        self.dwconv: nn.Module
        if filter == "global":
            self.dwconv = GlobalLocalFilter(spread, grid=grid, kernel=kernel)
        else:
            self.dwconv = conv_nd(rank, spread, spread, kernel, padding=kernel // 2, groups=spread)
        self.pws = nn.ModuleList(
            conv_nd(rank, c_in, c_out, 1)
            for c_in, c_out in zip(self.dims, self.dims[1:], strict=False)
        )
        self.proj_out = conv_nd(rank, dim, dim, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, rest = torch.split(self.proj_in(x), [self.dims[0], sum(self.dims)], dim=1)
        gates = torch.split(self.dwconv(rest) * self.scale, self.dims, dim=1)
        y = first * gates[0]
        for pw, gate in zip(self.pws, gates[1:], strict=True):
            y = pw(y) * gate
        return self.proj_out(y)
