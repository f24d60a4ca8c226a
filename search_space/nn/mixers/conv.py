"""Convolutional token mixers on 1-D or 2-D grids: depthwise conv, SepConv, VAN's LKA."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.convs import conv_nd, left_pad
from search_space.nn.large_kernel import ReparamDwConv
from search_space.ops.channel_mixers import hidden_width
from search_space.ops.large_kernel import reparam_branches
from search_space.ops.token_mixers.conv import lka_decomposition


class DwConv(nn.Module):
    """Depthwise k^r convolution (rank-r grid), stride 1, 'same' padding.

    Layout: grid ``(B, C, *grid)``. Complexity O(N d k^r).
    Cost: params d k^r (+ d bias); MACs N d k^r. With ``reparam`` the training form of RepLKNet
    or UniRepLKNet (`ReparamDwConv`, mergeable into the plain conv after training). With
    ``causal`` (1-D, no reparam) the sequence is padded by k - 1 on the left instead of k // 2 on
    both sides: same weights, output length and MACs.
    """

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        kernel: int,
        bias: bool,
        reparam: str = "none",
        small_kernel: int = 5,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.conv: nn.Module
        self.past = kernel - 1 if causal else 0
        if reparam != "none":  # training form with parallel branches (RepLKNet, UniRepLKNet)
            branches = reparam_branches(
                {"reparam": reparam, "kernel": kernel, "small_kernel": small_kernel}
            )
            self.conv = ReparamDwConv(len(grid), dim, kernel, branches)
        else:
            padding = 0 if causal else kernel // 2
            self.conv = conv_nd(len(grid), dim, dim, kernel, padding=padding, groups=dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(left_pad(x, self.past))


class SepConv(nn.Module):
    """MetaFormer's SepConv: pointwise d -> h, act, depthwise k^r on the grid, pointwise h -> d.

    Layout: grid_last ``(B, *grid, C)`` so the pointwise layers are plain linears. h =
    int(expansion * d). Complexity O(N d h + N h k^r).
    Cost: params 2 d h + h k^r (+ 2h + d with bias, + 2 for star_relu); MACs N (2 d h + h k^r).
    With ``causal`` (1-D) the depthwise conv pads k - 1 cells on the left only.
    """

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        expansion: float,
        act: str,
        kernel: int,
        bias: bool,
        causal: bool = False,
    ) -> None:
        super().__init__()
        hidden = hidden_width(dim, expansion)
        self.past = kernel - 1 if causal else 0
        self.pwconv1 = nn.Linear(dim, hidden, bias=bias)
        self.act = make_activation(act)
        padding = 0 if causal else kernel // 2
        self.dwconv = conv_nd(
            len(grid), hidden, hidden, kernel, padding=padding, groups=hidden, bias=bias
        )
        self.pwconv2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.pwconv1(x)).movedim(-1, 1)  # channels-first for the convolution
        return self.pwconv2(self.dwconv(left_pad(y, self.past)).movedim(1, -1))


class LargeKernelAttention(nn.Module):
    """VAN's SpatialAttention: ``proj_2(u * lka(u)) + x`` with ``u = GELU(proj_1(x))``.

    ``lka`` = depthwise (2d-1)^r conv -> depthwise 7^r conv with dilation d -> 1x1 conv, d = K/7
    (VAN's K = 21: 5x5 then 7x7 dilated by 3; see `lka_decomposition`, no local conv for K = 7).
    The shortcut is VAN's own, inside the mixer, on top of the block's residual.
    Layout: grid ``(B, C, *grid)``. Complexity O(N d^2).
    Cost: params 3 (d^2 + d) + d (l^r + 1) [if l] + d (7^r + 1), l = 2d-1;
    MACs N (3 d^2 + d l^r + d 7^r).
    With ``causal`` (1-D) both depthwise convs pad on the left only (l - 1 and 6 d cells): same
    weights, lengths and MACs.
    """

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], kernel: int, causal: bool = False
    ) -> None:
        super().__init__()
        rank = len(grid)
        local, dilated, dilation = lka_decomposition(kernel)
        self.past = (local - 1 if local else 0, dilation * (dilated - 1)) if causal else (0, 0)
        self.proj_1 = conv_nd(rank, dim, dim, 1)
        self.act = nn.GELU()
        self.conv0 = (
            conv_nd(rank, dim, dim, local, padding=0 if causal else local // 2, groups=dim)
            if local
            else nn.Identity()
        )
        self.conv_spatial = conv_nd(
            rank,
            dim,
            dim,
            dilated,
            padding=0 if causal else dilation * (dilated // 2),
            groups=dim,
            dilation=dilation,
        )
        self.conv1 = conv_nd(rank, dim, dim, 1)
        self.proj_2 = conv_nd(rank, dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.act(self.proj_1(x))
        local = self.conv0(left_pad(u, self.past[0]))
        attn = self.conv1(self.conv_spatial(left_pad(local, self.past[1])))
        return self.proj_2(u * attn) + x
