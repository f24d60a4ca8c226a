"""Stem modules: raw input to ``(B, P + N, C)`` tokens."""

from __future__ import annotations

import math

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.convs import conv_nd
from search_space.nn.norms import ChannelsFirstNorm, make_norm
from search_space.ops.base import conv_out


class TokenPrefix(nn.Module):
    """Class token and position embedding, applied to the stem's grid tokens."""

    sinusoid: torch.Tensor

    def __init__(self, dim: int, num_grid_tokens: int, *, cls_token: bool, pos_embed: str) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        tokens = num_grid_tokens + (1 if cls_token else 0)
        self.pos_embed: nn.Parameter | None = None
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        elif pos_embed == "sinusoidal":
            self.register_buffer("sinusoid", _sinusoid(tokens, dim), persistent=False)
        self.kind = pos_embed
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        elif self.kind == "sinusoidal":
            x = x + self.sinusoid
        return x


def _sinusoid(tokens: int, dim: int) -> torch.Tensor:
    position = torch.arange(tokens, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(tokens, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table[None]


class _GridStem(nn.Module):
    """Shared tail of image/feature stems: flatten the grid to tokens, add prefix and positions."""

    norm: nn.Module
    prefix: TokenPrefix

    def _finish(self, y: torch.Tensor) -> torch.Tensor:
        tokens = y.flatten(2).transpose(1, 2)
        return self.prefix(self.norm(tokens))


class PatchEmbed(_GridStem):
    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        patch_size: int,
        stride: int,
        padding: int,
        norm: str,
        bias: bool = True,
        cls_token: bool,
        pos_embed: str,
    ) -> None:
        super().__init__()
        stride = stride or patch_size
        self.proj = conv_nd(len(grid), in_channels, out_dim, patch_size, stride, padding, bias=bias)
        out_grid = [conv_out(g, patch_size, stride, padding) for g in grid]
        self.norm = make_norm(norm, out_dim)
        self.prefix = TokenPrefix(
            out_dim, math.prod(out_grid), cls_token=cls_token, pos_embed=pos_embed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # feature sequences arrive as (B, L, F)
            x = x.transpose(1, 2)
        return self._finish(self.proj(x))


class ConvStem(_GridStem):
    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        num_convs: int,
        kernel: int,
        hidden: int,
        norm: str,
        act: str,
        final_act: bool,
        bias: bool,
        cls_token: bool,
        pos_embed: str,
    ) -> None:
        super().__init__()
        rank, hidden = len(grid), hidden or max(1, out_dim // 2)
        widths = [hidden] * (num_convs - 1) + [out_dim]
        layers: list[nn.Module] = []
        c_in, out_grid = in_channels, list(grid)
        for i, c_out in enumerate(widths):
            layers.append(conv_nd(rank, c_in, c_out, kernel, 2, kernel // 2, bias=bias))
            layers.append(ChannelsFirstNorm(norm, c_out))
            if i < len(widths) - 1 or final_act:
                layers.append(make_activation(act))
            out_grid = [conv_out(g, kernel, 2, kernel // 2) for g in out_grid]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.norm = nn.Identity()
        self.prefix = TokenPrefix(
            out_dim, math.prod(out_grid), cls_token=cls_token, pos_embed=pos_embed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.transpose(1, 2)
        return self._finish(self.convs(x))


class TokenEmbed(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        cls_token: bool,
        pos_embed: str,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(in_channels, out_dim)
        self.prefix = TokenPrefix(
            out_dim, math.prod(grid), cls_token=cls_token, pos_embed=pos_embed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefix(self.embed(x))


class FeatureEmbed(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        cls_token: bool,
        pos_embed: str,
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_dim)
        self.prefix = TokenPrefix(
            out_dim, math.prod(grid), cls_token=cls_token, pos_embed=pos_embed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prefix(self.proj(x))
