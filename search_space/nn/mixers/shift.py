"""ShiftViT's parameter-free shift mixer."""

from __future__ import annotations

import torch
from torch import nn


def _shift(x: torch.Tensor, dim: int, step: int) -> torch.Tensor:
    """``x`` moved one cell along ``dim``: towards lower indices for step -1, zero filled."""
    size = x.shape[dim]
    zeros = x.new_zeros(*x.shape[:dim], 1, *x.shape[dim + 1 :])
    if step < 0:
        return torch.cat([x.narrow(dim, 1, size - 1), zeros], dim=dim)
    return torch.cat([zeros, x.narrow(dim, 0, size - 1)], dim=dim)


class Shift(nn.Module):
    """Moves g = C // n_div channels one cell in each direction, zero fill; the rest stay.

    Channel groups in ShiftViT's order: group 0 towards lower and group 1 towards higher indices
    along the last axis (left, right), then groups 2 and 3 along the axis before it (up, down) on
    2-D grids; channels from 2 r g on are unchanged.
    Layout: grid ``(B, C, *grid)``. Complexity O(N d). Cost: 0 params, 0 MACs.

    With ``causal`` (1-D sequences, RWKV-style token shift) no group reads the future: group 0
    takes position t - 2 and group 1 position t - 1 (zero filled), so the mixer still moves two
    groups, both from the past.
    """

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], n_div: int, causal: bool = False
    ) -> None:
        super().__init__()
        self.group = dim // n_div
        self.rank = len(grid)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.group
        if self.causal:
            axis = x.dim() - 1
            past2 = _shift(_shift(x[:, :g], axis, 1), axis, 1)
            past1 = _shift(x[:, g : 2 * g], axis, 1)
            return torch.cat([past2, past1, x[:, 2 * g :]], dim=1)
        parts: list[torch.Tensor] = []
        for axis in range(x.dim() - 1, x.dim() - 1 - self.rank, -1):
            for step in (-1, 1):
                start = g * len(parts)
                parts.append(_shift(x[:, start : start + g], axis, step))
        parts.append(x[:, g * len(parts) :])
        return torch.cat(parts, dim=1)
