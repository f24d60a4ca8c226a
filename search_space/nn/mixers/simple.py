"""Trivial token mixers."""

from __future__ import annotations

import torch
from torch import nn


class IdentityMixer(nn.Module):
    """No token mixing. Layout: tokens. Cost: 0 params, 0 MACs. Complexity O(1)."""

    def __init__(self, dim: int, *, grid: tuple[int, ...]) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
