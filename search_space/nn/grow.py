"""The ``grow`` downsampler; see `search_space.ops.grow`."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.norms import make_norm


class GrowConcat(nn.Module):
    """``cat(x, norm(W x))`` with W: in -> out - in channels (bias only without a norm).

    Layout: tokens (B, P + N, C), prefix tokens included. Cost: T C_in (C_out - C_in) MACs plus
    the norm.
    """

    def __init__(
        self, dim: int, out_dim: int, *, grid: tuple[int, ...], prefix: int, norm: str
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, out_dim - dim, bias=norm == "none")
        self.norm = make_norm(norm, out_dim - dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.norm(self.proj(x))], dim=-1)
