"""Attention token mixers. Score and weighted-sum matmuls run through
`torch.nn.functional.scaled_dot_product_attention`; the cost counter has a handler for it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Global multi-head softmax self-attention (ViT).

    Layout: tokens ``(B, T, C)``, class tokens included. Complexity O(T^2 d + T d^2).
    Cost: params 4d^2 + d (+3d with qkv bias); MACs 4 T d^2 (projections) + 2 T^2 d (QK^T, AV).
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], head_dim: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(y.transpose(1, 2).reshape(b, t, c))
