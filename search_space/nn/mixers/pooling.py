"""PoolFormer's pooling token mixer."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.convs import avg_pool_nd


class Pooling(nn.Module):
    """``avg_pool(x) - x``: stride 1, padding k // 2, padded cells not counted in the average.

    The input is subtracted because the block adds it back (PoolFormer), so a constant map gets a
    zero update everywhere, borders included.
    Layout: grid ``(B, C, *grid)``. Complexity O(N d k^r). Cost: 0 params, 0 MACs (fvcore counts
    no average pooling with a fixed window).
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], pool_size: int) -> None:
        super().__init__()
        self.pool = avg_pool_nd(
            len(grid), pool_size, stride=1, padding=pool_size // 2, count_include_pad=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x
