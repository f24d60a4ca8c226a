"""PoolFormer's pooling token mixer."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.convs import avg_pool_nd, left_pad


class Pooling(nn.Module):
    """``avg_pool(x) - x``: stride 1, padding k // 2, padded cells not counted in the average.

    The input is subtracted because the block adds it back (PoolFormer), so a constant map gets a
    zero update everywhere, borders included.
    Layout: grid ``(B, C, *grid)``. Complexity O(N d k^r). Cost: 0 params, 0 MACs (fvcore counts
    no average pooling with a fixed window).

    With ``causal`` (1-D sequences) the window is the last k positions t - k + 1 .. t: the
    sequence is padded by k - 1 zeros on the left and each average rescaled to the positions that
    exist (k / min(t + 1, k), a fixed buffer; an elementwise product, free), as
    ``count_include_pad=False`` does for the centred window.
    """

    rescale: torch.Tensor

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], pool_size: int, causal: bool = False
    ) -> None:
        super().__init__()
        self.past = pool_size - 1 if causal else 0
        if causal:
            self.pool = avg_pool_nd(1, pool_size, stride=1, padding=0, count_include_pad=True)
            seen = torch.arange(1, grid[0] + 1).clamp(max=pool_size).float()
            self.register_buffer("rescale", pool_size / seen, persistent=False)
        else:
            self.pool = avg_pool_nd(
                len(grid), pool_size, stride=1, padding=pool_size // 2, count_include_pad=False
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.past:
            return self.pool(left_pad(x, self.past)) * self.rescale - x
        return self.pool(x) - x
