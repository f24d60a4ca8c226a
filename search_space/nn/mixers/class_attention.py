"""Class attention (CaiT) in plain torch; see `search_space.ops.token_mixers.class_attention`."""

from __future__ import annotations

import math

import torch
from torch import nn

from search_space.nn.quant.layers import attend


class ClassAttention(nn.Module):
    """Class attention: "Going deeper with Image Transformers" (Touvron et al., ICCV 2021).

    The P prefix (class) tokens are the only queries; keys and values come from all T = P + N
    tokens. The output updates the class tokens and is zero on the grid tokens, so a residual
    block leaves the grid tokens as they were; blocks with ``tokens: prefix`` also run their
    channel mixer on the class tokens alone (CaiT, VOLO and SpectFormer-H post-network blocks).

    Layout: tokens ``(B, P + N, C)``; P is what the input has beyond the N grid tokens.
    Complexity O(P N d + N d^2): the key/value projection of every token dominates.
    Cost: params 4d^2 + d (+3d with qkv bias); MACs P d^2 (q) + 2 T d^2 (kv) + 2 P T d (QK^T,
    AV) + P d^2 (projection).
    """

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(self, dim: int, *, grid: tuple[int, ...], head_dim: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.grid_tokens = math.prod(grid)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        p = t - self.grid_tokens
        kv = self.kv(x).reshape(b, t, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q = self.q(x[:, :p]).reshape(b, p, self.heads, self.head_dim).transpose(1, 2)
        y = attend(self, q, kv[0], kv[1])  # (B, heads, P, head_dim)
        y = self.proj(y.transpose(1, 2).reshape(b, p, c))
        # grid tokens: a zero update (the cat of zeros is free, so MACs stay P-sized)
        return torch.cat([y, y.new_zeros(b, t - p, c)], dim=1)
