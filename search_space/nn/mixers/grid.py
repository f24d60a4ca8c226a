"""MaxViT grid attention in plain torch: a strided window partition, then window attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.mixers.windows import relative_position_index, window_bias
from search_space.nn.quant.layers import attend
from search_space.ops.token_mixers.local_attention import grid_geometry


def grid_partition(
    x: torch.Tensor, cells: tuple[int, ...], strides: tuple[int, ...]
) -> torch.Tensor:
    """``(B, *padded, C)`` -> ``(B, prod(strides), prod(cells), C)``: window w holds the tokens
    at offset w inside every cell, in cell order (timm's ``grid_partition`` on 2-D grids)."""
    b, c, rank = x.shape[0], x.shape[-1], len(cells)
    split = [n for pair in zip(cells, strides, strict=True) for n in pair]
    # axes (B, G_1, s_1, ..., G_k, s_k, C) -> (B, s_1..s_k, G_1..G_k, C)
    order = [0, *(2 + 2 * i for i in range(rank)), *(1 + 2 * i for i in range(rank)), 1 + 2 * rank]
    x = x.reshape(b, *split, c).permute(*order)
    return x.reshape(b, math.prod(strides), math.prod(cells), c)


def grid_reverse(x: torch.Tensor, cells: tuple[int, ...], strides: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `grid_partition`."""
    b, c, rank = x.shape[0], x.shape[-1], len(cells)
    x = x.reshape(b, *strides, *cells, c)
    order = [0, *(n for i in range(rank) for n in (1 + rank + i, 1 + i)), 1 + 2 * rank]
    padded = [g * s for g, s in zip(cells, strides, strict=True)]
    return x.permute(*order).reshape(b, *padded, c)


class GridAttention(nn.Module):
    """Grid attention of "MaxViT: Multi-Axis Vision Transformer" (Tu et al., ECCV 2022).

    The grid is cut into ``G^k`` equal cells; window w gathers the token at offset w of every
    cell, so each window is a dilated ``G^k`` lattice spanning the whole grid (sparse global
    mixing), and softmax attention with a relative position bias over cell offsets runs in each
    window. MaxViT's other half, block attention, is `window_attention` (same parameters: qkv and
    output projections with bias and a ``(2M-1)^k x heads`` table).

    Layout: grid_last ``(B, *grid, C)``; 1-D and 2-D grids. Complexity O(N G^k d + N d^2).
    Geometry (`grid_geometry`): ``G`` is clipped to the grid on each axis; a grid that ``G`` does
    not divide is padded after the projection to ``G * ceil(grid / G)`` and padding keys are
    masked out (MaxViT itself needs divisible grids).

    Cost: params 4d^2 + d (+3d qkv bias) (+ prod(2 G_a - 1) heads table); MACs 4 N d^2 +
    2 N_pad T d, T = prod(G_a) tokens per window.
    """

    rel_pos_index: torch.Tensor
    mask: torch.Tensor | None

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        grid_size: int,
        head_dim: int,
        qkv_bias: bool,
        rel_pos_bias: bool,
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.grid = tuple(grid)
        geo = grid_geometry(self.grid, grid_size)
        self.cells, self.strides, self.padded = geo.cells, geo.strides, geo.padded
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_table: nn.Parameter | None = None
        if rel_pos_bias:
            rows = math.prod(2 * c - 1 for c in self.cells)
            self.rel_pos_table = nn.Parameter(torch.zeros(rows, self.heads))
            nn.init.trunc_normal_(self.rel_pos_table, std=0.02)
            index = relative_position_index(self.cells)
            self.register_buffer("rel_pos_index", index, persistent=False)
        mask = None
        if self.padded != self.grid:
            pad = torch.ones(self.padded, dtype=torch.bool)
            pad[tuple(slice(0, g) for g in self.grid)] = False
            pad = grid_partition(pad[None, ..., None], self.cells, self.strides)[0, ..., 0]
            # (windows, 1, 1, T): padding keys get -inf for every head and query
            mask = torch.zeros(pad.shape).masked_fill_(pad, float("-inf"))[:, None, None]
        self.register_buffer("mask", mask, persistent=False)

    def _attn_bias(self) -> torch.Tensor | None:
        index = getattr(self, "rel_pos_index", None)
        tokens = math.prod(self.cells)
        return window_bias(self.rel_pos_table, index, tokens, self.heads, self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[-1]
        qkv = self.qkv(x)
        pads = [p - g for g, p in zip(self.grid, self.padded, strict=True)]
        if any(pads):
            qkv = F.pad(qkv, [0, 0, *(p for pad in reversed(pads) for p in (0, pad))])
        win = grid_partition(qkv, self.cells, self.strides)
        nw, t = win.shape[1], win.shape[2]
        # (3, B, windows, heads, T, head_dim)
        q, k, v = win.reshape(b, nw, t, 3, self.heads, self.head_dim).permute(3, 0, 1, 4, 2, 5)
        y = attend(self, q, k, v, attn_mask=self._attn_bias())
        y = grid_reverse(y.transpose(2, 3).reshape(b, nw, t, c), self.cells, self.strides)
        if any(pads):
            y = y[(slice(None), *(slice(0, g) for g in self.grid))]
        return self.proj(y)
