"""Upsampling modules (U-Net decoders); see `search_space.ops.upsample`."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.layout import grid_to_tokens, tokens_to_grid

_TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


class TransposedConvUpsample(nn.Module):
    """Tokens on ``grid`` to tokens on ``factor * grid``: a transposed conv, kernel = stride.

    Cost: C_in C_out f^r (+ C_out) params; N C_in C_out f^r MACs (N input cells).
    """

    def __init__(
        self, dim: int, out_dim: int, *, grid: tuple[int, ...], prefix: int, factor: int
    ) -> None:
        super().__init__()
        self.grid, self.num_prefix = tuple(grid), prefix
        self.up = _TRANSPOSED[len(grid)](dim, out_dim, kernel_size=factor, stride=factor)
        self.prefix_proj = nn.Linear(dim, out_dim) if prefix and dim != out_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = grid_to_tokens(self.up(tokens_to_grid(x, self.grid, self.num_prefix)))
        if not self.num_prefix:
            return y
        head = x[:, : self.num_prefix]
        if self.prefix_proj is not None:
            head = self.prefix_proj(head)
        return torch.cat([head, y], dim=1)
