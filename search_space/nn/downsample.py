"""Downsampler modules on the ``(B, P + N, C)`` token tensor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.convs import avg_pool_nd, conv_nd
from search_space.nn.layout import grid_to_tokens, tokens_to_grid
from search_space.nn.norms import ChannelsFirstNorm, make_norm
from search_space.nn.stems import TokenPrefix
from search_space.ops.downsample import conv_padding


class _Downsample(nn.Module):
    """Splits off prefix tokens, downsamples the grid, projects the prefix to the new width."""

    def __init__(self, dim: int, out_dim: int, grid: tuple[int, ...], prefix: int) -> None:
        super().__init__()
        self.grid, self.num_prefix = tuple(grid), prefix
        self.prefix_proj = nn.Linear(dim, out_dim) if prefix and dim != out_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.downsample(tokens_to_grid(x, self.grid, self.num_prefix))
        if not self.num_prefix:
            return y
        head = x[:, : self.num_prefix]
        if self.prefix_proj is not None:
            head = self.prefix_proj(head)
        return torch.cat([head, y], dim=1)

    def downsample(self, grid: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NoDownsample(nn.Module):
    def __init__(self, dim: int, out_dim: int, *, grid: tuple[int, ...], prefix: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ConvDownsample(_Downsample):
    def __init__(
        self,
        dim: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        prefix: int,
        kernel: int,
        stride: int,
        norm: str,
        norm_position: str,
        bias: bool = True,
        residual: bool = False,
    ) -> None:
        super().__init__(dim, out_dim, grid, prefix)
        rank = len(grid)
        self.pre_norm = ChannelsFirstNorm(norm, dim) if norm_position == "pre" else nn.Identity()
        padding = conv_padding(kernel, stride)
        self.conv = conv_nd(rank, dim, out_dim, kernel, stride, padding, bias=bias)
        self.post_norm = (
            ChannelsFirstNorm(norm, out_dim) if norm_position == "post" else (nn.Identity())
        )
        # ViT-ResNAS's residual spatial reduction: the shortcut carries the un-normalised
        # tokens, pooled to the new grid and projected to the new width, past the conv
        self.shortcut_pool = (
            avg_pool_nd(rank, 2, 2, ceil_mode=True, count_include_pad=False) if residual else None
        )
        self.shortcut_proj = (
            nn.Linear(dim, out_dim, bias=False) if residual and dim != out_dim else nn.Identity()
        )

    def downsample(self, grid: torch.Tensor) -> torch.Tensor:
        y = grid_to_tokens(self.post_norm(self.conv(self.pre_norm(grid))))
        if self.shortcut_pool is None:
            return y
        return y + self.shortcut_proj(grid_to_tokens(self.shortcut_pool(grid)))


class PatchMerging(_Downsample):
    def __init__(
        self, dim: int, out_dim: int, *, grid: tuple[int, ...], prefix: int, norm: str
    ) -> None:
        super().__init__(dim, out_dim, grid, prefix)
        merged = dim * 2 ** len(grid)
        self.norm = make_norm(norm, merged)
        self.reduction = nn.Linear(merged, out_dim, bias=False)

    def downsample(self, grid: torch.Tensor) -> torch.Tensor:
        # pad odd sizes, then gather each 2x2 (or 2) neighbourhood into the channel axis
        pads: list[int] = []
        for size in reversed(grid.shape[2:]):
            pads += [0, size % 2]
        grid = F.pad(grid, pads)
        if grid.dim() == 4:
            b, c, h, w = grid.shape
            grid = grid.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 5, 3, 1)
            tokens = grid.reshape(b, (h // 2) * (w // 2), 4 * c)
        else:
            b, c, length = grid.shape
            tokens = (
                grid.reshape(b, c, length // 2, 2)
                .permute(0, 2, 3, 1)
                .reshape(b, length // 2, 2 * c)
            )
        return self.reduction(self.norm(tokens))


class PoolDownsample(_Downsample):
    def __init__(
        self,
        dim: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        prefix: int,
        bias: bool = True,
        norm: str = "none",
    ) -> None:
        super().__init__(dim, out_dim, grid, prefix)
        self.pool = avg_pool_nd(len(grid), 2, 2, ceil_mode=True, count_include_pad=False)
        self.proj = nn.Linear(dim, out_dim, bias=bias) if dim != out_dim else nn.Identity()
        self.norm = make_norm(norm, out_dim) if dim != out_dim else nn.Identity()

    def downsample(self, grid: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(grid_to_tokens(self.pool(grid))))


class EmbedTokens(nn.Module):
    """The ``embed`` downsampler: keeps the grid, adds a class token and/or positions.

    Class-attention networks (CaiT, VOLO, SpectFormer-H) append their class token just before
    the class-attention blocks rather than in the stem, and VOLO adds its position embedding
    after the outlooker stage; this does either at a stage boundary. A width change projects
    grid and prefix tokens with linear layers first. The new class token goes in front of any
    existing prefix tokens (heads with ``pool: cls`` read it); ``mean`` makes it the average of
    the grid tokens (SpectFormer-H), ``learned`` a parameter (CaiT, VOLO). Positions cover all
    tokens, as the stems' do.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        prefix: int,
        class_token: str,
        pos_embed: str,
    ) -> None:
        super().__init__()
        self.num_prefix, self.mean_token = prefix, class_token == "mean"
        changes = dim != out_dim
        self.proj = nn.Linear(dim, out_dim) if changes else None
        self.prefix_proj = nn.Linear(dim, out_dim) if changes and prefix else None
        existing = prefix + math.prod(grid) + int(self.mean_token)
        self.embed = TokenPrefix(
            out_dim, existing, cls_token=class_token == "learned", pos_embed=pos_embed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head, grid = x[:, : self.num_prefix], x[:, self.num_prefix :]
        if self.proj is not None:
            grid = self.proj(grid)
            # without prefix tokens the (empty) head still has to be at the new width
            head = self.prefix_proj(head) if self.prefix_proj is not None else grid[:, :0]
        if self.mean_token:
            head = torch.cat([grid.mean(dim=1, keepdim=True), head], dim=1)
        return self.embed(torch.cat([head, grid], dim=1))  # type: ignore[no-any-return]
