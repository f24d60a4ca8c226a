"""LeViT's attention (attention biases, BN-linears, hardswish), which EfficientFormer reuses
with plain linears."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.quant.layers import attend


class LinearNorm(nn.Module):
    """A linear layer followed by batch norm over all tokens (LeViT's ``LinearNorm``), or a
    biased linear layer when ``norm`` is False."""

    def __init__(self, d_in: int, d_out: int, norm: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=not norm)
        self.bn = nn.BatchNorm1d(d_out) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return x if self.bn is None else self.bn(x.flatten(0, 1)).reshape(x.shape)


def attention_bias_index(grid: tuple[int, ...]) -> torch.Tensor:
    """``(N, N)`` index into an N-entry table: the absolute offset ``|dy| W + |dx|`` of each
    query/key pair (LeViT), so symmetric offsets share a bias."""
    coords = torch.tensor(list(itertools.product(*map(range, grid))))
    offsets = (coords[:, None, :] - coords[None, :, :]).abs()
    index = torch.zeros(offsets.shape[:2], dtype=torch.long)
    for axis, size in enumerate(grid):
        index = index * size + offsets[..., axis]
    return index


class LeViTAttention(nn.Module):
    """Attention with learned attention biases: "LeViT: a Vision Transformer in ConvNet's
    Clothing for Faster Inference" (Graham et al., ICCV 2021), as reused by "EfficientFormer:
    Vision Transformers at MobileNet Speed" (Li et al., NeurIPS 2022).

    Heads and their key (``key_dim``) and value (``attn_ratio * key_dim``) widths are set apart
    from the model width. A learned bias per head and absolute offset between query and key
    replaces position embeddings. LeViT: q/k/v and output projections are linears without bias
    followed by batch norm, and a hardswish precedes the output projection; EfficientFormer's
    MHSA is the same with biased linears and no activation (``norm='none', act='identity'``).

    Layout: sequence ``(B, N, C)`` (class tokens pass by); 1-D and 2-D grids (the bias table has
    one entry per grid position). Complexity O(N^2 h (k + v) + N d h (2k + v)).
    Parameterised as timm's ``levit.Attention`` / ``efficientformer.Attention``.

    Cost: params d h (2k + v) + h v d (+ BN 2 h (2k + v) + 2d, or biases h (2k + v) + d) + h N;
    MACs N d h (2k + v) + N h v d (+ BN 2 N (h (2k + v) + d)) + N^2 h (k + v).
    """

    bias_index: torch.Tensor

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        key_dim: int,
        heads: int,
        attn_ratio: float,
        norm: str,
        act: str,
    ) -> None:
        super().__init__()
        self.heads, self.key_dim, self.val_dim = heads, key_dim, int(attn_ratio * key_dim)
        bn = norm == "batchnorm"
        self.qkv = LinearNorm(dim, heads * (2 * key_dim + self.val_dim), bn)
        self.act = make_activation(act)
        self.proj = LinearNorm(heads * self.val_dim, dim, bn)
        self.attention_biases = nn.Parameter(torch.zeros(heads, math.prod(grid)))
        self.register_buffer("bias_index", attention_bias_index(tuple(grid)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        # per head [q | k | v] channels, as LeViT and EfficientFormer split them
        qkv = self.qkv(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.val_dim], dim=-1)
        bias = self.attention_biases[:, self.bias_index]  # (heads, N, N)
        y = attend(self, q, k, v, attn_mask=bias)
        return self.proj(self.act(y.transpose(1, 2).reshape(b, n, -1)))
