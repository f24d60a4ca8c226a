"""Modules for a spec's structural fields: skip merges (U-Net), latent tokens with their
read/write cross-attention (FIT), nested MLPs (MatFormer) and repeated blocks (SReT).

Cost formulas are in `search_space.structure`; shapes follow `search_space.plan`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.activations import make_activation
from search_space.ops.channel_mixers import hidden_width
from search_space.structure import groups_of


class SkipMerge(nn.Module):
    """Joins a skip: ``linear(concat(x, skip))`` (width + source width -> width) or ``x + skip``.

    Layout: tokens (B, P + N, C) on both inputs (same grid and prefix). Cost: T (C + C_s) C MACs
    for concat, nothing for add.
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], source_dim: int, merge: str) -> None:
        super().__init__()
        self.merge = merge
        self.proj = nn.Linear(dim + source_dim, dim) if merge == "concat" else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            return x + skip
        return self.proj(torch.cat([x, skip], dim=-1))


class LatentTokens(nn.Module):
    """``tokens`` learned latents per ``group``-sided window: a (G * L, C) table."""

    def __init__(self, dim: int, *, grid: tuple[int, ...], tokens: int, group: int) -> None:
        super().__init__()
        count = groups_of(grid, group) * tokens
        self.table = nn.Parameter(torch.randn(1, count, dim) * 0.02)

    def forward(self, batch: int) -> torch.Tensor:
        return self.table.expand(batch, -1, -1)


def _windows(x: torch.Tensor, grid: tuple[int, ...], group: int) -> torch.Tensor:
    """(B, N, C) grid tokens to (B * G, group^rank, C), windows in row-major order."""
    b, _, c = x.shape
    if len(grid) == 1:
        return x.reshape(b * (grid[0] // group), group, c)
    h, w = grid
    y = x.reshape(b, h // group, group, w // group, group, c).permute(0, 1, 3, 2, 4, 5)
    return y.reshape(b * (h // group) * (w // group), group * group, c)


def _unwindows(y: torch.Tensor, grid: tuple[int, ...], group: int, batch: int) -> torch.Tensor:
    c = y.shape[-1]
    if len(grid) == 1:
        return y.reshape(batch, grid[0], c)
    h, w = grid
    y = y.reshape(batch, h // group, w // group, group, group, c).permute(0, 1, 3, 2, 4, 5)
    return y.reshape(batch, h * w, c)


class _CrossAttention(nn.Module):
    """Pre-norm multi-head cross-attention within windows, added to the queries."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.heads = dim // head_dim
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.proj = (
            nn.Linear(dim, dim),
            nn.Linear(dim, 2 * dim),
            nn.Linear(dim, dim),
        )

    def attend(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """(W, Lq, C) queries and (W, Lk, C) keys, W independent windows."""
        w, lq, c = queries.shape
        h = self.heads
        q = self.q(self.norm_q(queries)).reshape(w, lq, h, c // h).transpose(1, 2)
        k, v = self.kv(self.norm_kv(keys)).reshape(w, -1, 2, h, c // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return queries + self.proj(out.transpose(1, 2).reshape(w, lq, c))


class LatentRead(_CrossAttention):
    """Latents <- data (FIT): each window's latents query its data tokens.

    Inputs: latents (B, G * L, C), data tokens (B, P + N, C). Cost: see
    `search_space.structure.LATENT_READ`.
    """

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], tokens: int, group: int, head_dim: int
    ) -> None:
        super().__init__(dim, head_dim)
        self.grid, self.tokens, self.group = tuple(grid), tokens, group

    def forward(self, z: torch.Tensor, x: torch.Tensor, prefix: int) -> torch.Tensor:
        b = z.shape[0]
        data = _windows(x[:, prefix:], self.grid, self.group)
        lat = z.reshape(data.shape[0], self.tokens, -1)
        return self.attend(lat, data).reshape(b, -1, z.shape[-1])


class LatentWrite(_CrossAttention):
    """Data <- latents (FIT): each window's data tokens query its latents; prefix unchanged."""

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], tokens: int, group: int, head_dim: int
    ) -> None:
        super().__init__(dim, head_dim)
        self.grid, self.tokens, self.group = tuple(grid), tokens, group

    def forward(self, x: torch.Tensor, z: torch.Tensor, prefix: int) -> torch.Tensor:
        b = x.shape[0]
        data = _windows(x[:, prefix:], self.grid, self.group)
        lat = z.reshape(data.shape[0], self.tokens, -1)
        y = _unwindows(self.attend(data, lat), self.grid, self.group, b)
        return torch.cat([x[:, :prefix], y], dim=1) if prefix else y


class NestedMlp(nn.Module):
    """MatFormer's nested FFN: stores a ``parent_ratio`` MLP, runs the first ``int(ratio * d)``
    hidden units (a prefix slice of fc1's rows and fc2's columns).

    Layout: tokens. Cost: parameters of the parent, MACs 2 T d h of the prefix h.
    """

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        ratio: float,
        act: str,
        bias: bool,
        parent_ratio: float,
    ) -> None:
        super().__init__()
        self.used = hidden_width(dim, ratio)
        stored = hidden_width(dim, parent_ratio)
        self.fc1 = nn.Linear(dim, stored, bias=bias)
        self.act = make_activation(act)
        self.fc2 = nn.Linear(stored, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.used
        b1 = self.fc1.bias[:h] if self.fc1.bias is not None else None
        y = self.act(F.linear(x, self.fc1.weight[:h], b1))
        return F.linear(y, self.fc2.weight[:, :h], self.fc2.bias)


class Repeated(nn.Module):
    """Applies one block ``times`` times with the same weights (SReT's recursion)."""

    def __init__(self, block: nn.Module, times: int) -> None:
        super().__init__()
        self.block, self.times = block, times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.times):
            x = self.block(x)
        return x


class NoTokenMixer(nn.Module):
    """The ``none`` token mixer. The planner drops a block's token branch (norm, mixer, layer
    scale) when it names ``none``, so a built model never calls this; on its own it contributes
    nothing (a zero update). Layout: tokens. Cost: 0."""

    def __init__(self, dim: int, *, grid: tuple[int, ...]) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0


class ChannelSlice(nn.Module):
    """Applies ``block`` to channels [start, end) of the tokens; the others pass through."""

    def __init__(self, block: nn.Module, start: int, end: int) -> None:
        super().__init__()
        self.block, self.start, self.end = block, start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        part = self.block(x[..., self.start : self.end])
        return torch.cat([x[..., : self.start], part, x[..., self.end :]], dim=-1)
