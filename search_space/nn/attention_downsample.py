"""LeViT's shrink attention downsampler, "LeViT: a Vision Transformer in ConvNet's Clothing for
Faster Inference" (parameterised as timm's ``levit.AttentionDownsample``)."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from search_space.nn.activations import make_activation
from search_space.nn.downsample import _Downsample
from search_space.nn.layout import grid_to_tokens
from search_space.nn.mixers.levit_attention import LinearNorm
from search_space.ops.attention_downsample import subsample_heads
from search_space.ops.base import OpContext


def strided_bias_index(grid: tuple[int, ...]) -> torch.Tensor:
    """``(N_out, N)`` index into an N-entry table: the absolute offset between each query on the
    stride-2 grid and each key on the full grid, ``|dy| W + |dx|`` (LeViT's bias indexing)."""
    keys = torch.tensor(list(itertools.product(*map(range, grid))))
    queries = torch.tensor(list(itertools.product(*(range(0, g, 2) for g in grid))))
    offsets = (queries[:, None, :] - keys[None, :, :]).abs()
    index = torch.zeros(offsets.shape[:2], dtype=torch.long)
    for axis, size in enumerate(grid):
        index = index * size + offsets[..., axis]
    return index


class AttentionSubsample(_Downsample):
    """``proj(act(softmax(q k^T / sqrt(k) + B) v))`` with q from every second grid cell and k, v
    from all cells: the output grid is ceil(g / 2) per axis and the width becomes ``out_dim``.

    Cost: params d h (k + v) + d h k + h v o (+ BN 2 (h (2k + v) + o)) + h N; MACs N d h (k + v)
    + N' d h k + N' N h (k + v) + N' h v o + 2 per batch-normed element (N' = output cells).
    """

    bias_index: torch.Tensor

    def __init__(
        self,
        dim: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        prefix: int,
        key_dim: int,
        heads: int,
        attn_ratio: float,
        act: str,
    ) -> None:
        super().__init__(dim, out_dim, grid, prefix)
        ctx = OpContext(dim=dim, grid=tuple(grid), out_dim=out_dim)
        self.heads = subsample_heads(ctx, {"heads": heads, "key_dim": key_dim})
        self.key_dim, self.val_dim = key_dim, int(attn_ratio * key_dim)
        self.kv = LinearNorm(dim, self.heads * (key_dim + self.val_dim), True)
        self.q = LinearNorm(dim, self.heads * key_dim, True)
        self.act = make_activation(act)
        self.proj = LinearNorm(self.heads * self.val_dim, out_dim, True)
        self.attention_biases = torch.nn.Parameter(torch.zeros(self.heads, math.prod(grid)))
        self.register_buffer("bias_index", strided_bias_index(tuple(grid)), persistent=False)

    def downsample(self, grid: torch.Tensor) -> torch.Tensor:
        b = grid.shape[0]
        strided = grid[(slice(None), slice(None), *([slice(None, None, 2)] * (grid.dim() - 2)))]
        tokens, queries = grid_to_tokens(grid), grid_to_tokens(strided)
        k, v = (
            self.kv(tokens)
            .reshape(b, tokens.shape[1], self.heads, -1)
            .transpose(1, 2)
            .split([self.key_dim, self.val_dim], dim=-1)
        )
        q = self.q(queries).reshape(b, queries.shape[1], self.heads, -1).transpose(1, 2)
        bias = self.attention_biases[:, self.bias_index]  # (heads, N_out, N)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(self.act(y.transpose(1, 2).reshape(b, queries.shape[1], -1)))
