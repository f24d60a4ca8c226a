"""Outlook attention (VOLO) in plain torch: unfold, per-centre predicted weights, fold."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.quant.layers import score_operand
from search_space.ops.token_mixers.attention_variants import outlook_grid


class OutlookAttention(nn.Module):
    """Outlook attention: "VOLO: Vision Outlooker for Visual Recognition" (Yuan et al., 2021).

    Window centres sit every ``stride`` tokens. From the feature at each centre (average-pooled
    over ``stride^r`` tokens when stride > 1) a linear layer predicts, per head, a K^r x K^r
    attention matrix (softmax over its last axis); it mixes the values of the K^r window around
    the centre into K^r outputs, and overlapping windows' outputs are summed back onto the grid
    (fold). No query-key dot products: the weights are generated, not compared.

    Layout: grid_last ``(B, *grid, C)``; 1-D grids run as ``(L, 1)`` images with a ``(K, 1)``
    window. Complexity O(N K^(2r) h d / s^r + N d^2). Parameterised as VOLO's
    ``OutlookAttention``: ``v`` (bias optional, off in VOLO), ``attn`` (d -> K^(2r) heads, bias),
    ``proj`` (bias); padding K // 2 and ceil-mode pooling, so there are ``ceil(grid / stride)``
    centres per axis and odd grids work as they are.

    Cost: params 2d^2 + d (+d v bias) + d K^(2r) h + K^(2r) h; MACs 2 N d^2 + M d K^(2r) h +
    M K^(2r) d, M = prod(ceil(grid / stride)) centres.
    """

    QUANT_SCORES = True  # score_operand(): the policy may quantize v and the softmax

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        kernel: int,
        stride: int,
        head_dim: int,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.image = (grid[0], grid[1] if len(grid) == 2 else 1)
        self.centres = outlook_grid(self.image, stride)
        flat = len(grid) == 1
        # a 1-D grid is an (L, 1) image: the second axis has a window of 1, no padding, stride 1
        self.kernel = (kernel, 1 if flat else kernel)
        self.stride = (stride, 1 if flat else stride)
        self.padding = (kernel // 2, 0 if flat else kernel // 2)
        self.window = self.kernel[0] * self.kernel[1]
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn = nn.Linear(dim, self.window * self.window * self.heads)
        self.proj = nn.Linear(dim, dim)
        self.pool: nn.Module | None = None
        if stride > 1:
            self.pool = nn.AvgPool2d(self.stride, stride=self.stride, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[-1]
        img = x.reshape(b, *self.image, c)
        m, w = self.centres[0] * self.centres[1], self.window
        v = self.v(img).permute(0, 3, 1, 2)
        v = F.unfold(v, self.kernel, padding=self.padding, stride=self.stride)
        # (B, heads, M, K, head_dim): each centre's window of values
        v = v.reshape(b, self.heads, self.head_dim, w, m).permute(0, 1, 4, 3, 2)
        centre = (
            img if self.pool is None else self.pool(img.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        )
        attn = self.attn(centre).reshape(b, m, self.heads, w, w).permute(0, 2, 1, 3, 4)
        attn = score_operand(self, "probs", (attn * self.head_dim**-0.5).softmax(dim=-1))
        y = (attn @ score_operand(self, "v", v)).permute(0, 1, 4, 3, 2).reshape(b, c * w, m)
        y = F.fold(y, self.image, self.kernel, padding=self.padding, stride=self.stride)
        return self.proj(y.permute(0, 2, 3, 1)).reshape(x.shape)
