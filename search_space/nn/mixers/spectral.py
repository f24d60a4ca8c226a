"""GFNet's global filter."""

from __future__ import annotations

import torch
from torch import nn

from search_space.ops.token_mixers.spectral import rfft_grid


class GlobalFilter(nn.Module):
    """``irfft(rfft(x) * W)`` over the grid axes, W a learnable complex filter per channel.

    Grid-bound: W has shape (C, H, W//2+1) on a 2-D grid and (C, L//2+1) on a 1-D grid, stored as
    real pairs like GFNet's ``complex_weight`` (GFNet keeps channels last; here the grid axes are
    last so the transforms run over contiguous trailing axes, which is also what the MAC counter
    reads when it cannot resolve an explicit ``dim`` list). Orthonormal transforms, so W = 1 is the
    identity. Computed in float32 (half-precision FFTs need power-of-two sizes).
    Layout: grid ``(B, C, *grid)``. Complexity O(N d log N).
    Cost: params 2 F C with F = prod(rfft grid); MACs 2 C N log2 N (one real forward and one real
    inverse transform per channel, mixnas's FFT convention; the complex product is free).
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...]) -> None:
        super().__init__()
        if len(grid) not in (1, 2):
            raise ValueError(f"GlobalFilter supports 1-D and 2-D grids, not {grid}")
        self.grid = tuple(grid)
        self.complex_weight = nn.Parameter(torch.randn(dim, *rfft_grid(self.grid), 2) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.view_as_complex(self.complex_weight)
        if len(self.grid) == 1:
            spectrum = torch.fft.rfft(x.float(), norm="ortho") * weight
            y = torch.fft.irfft(spectrum, n=self.grid[0], norm="ortho")
        else:
            spectrum = torch.fft.rfft2(x.float(), norm="ortho") * weight
            y = torch.fft.irfft2(spectrum, s=self.grid, norm="ortho")
        return y.to(x.dtype)
