"""CvT's convolutional-projection attention in plain torch."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from search_space.nn.convs import conv_nd
from search_space.nn.quant.layers import attend

_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


def _projection(rank: int, dim: int, kernel: int, stride: int) -> nn.Sequential:
    """CvT's ``dw_bn`` projection: depthwise conv without bias, then batch norm."""
    conv = conv_nd(
        rank, dim, dim, kernel, padding=kernel // 2, stride=stride, bias=False, groups=dim
    )
    return nn.Sequential(OrderedDict(conv=conv, bn=_BATCH_NORM[rank](dim)))


class ConvAttention(nn.Module):
    """Convolutional projection attention: "CvT: Introducing Convolutions to Vision
    Transformers" (Wu et al., ICCV 2021).

    Before the usual q/k/v linears, the grid tokens pass through a depthwise conv + batch norm
    (one per q, k, v); the key and value convs are strided (``stride_kv``), which shrinks the
    keys and values by ``stride_kv^r`` (CvT's squeezed K/V). Class tokens skip the convs and
    join q, k and v afterwards, as in CvT's last stage.

    Layout: tokens ``(B, P + N, C)``; 1-D and 2-D grids. Complexity O(N^2 d / s^r + N d^2 +
    N d k^r). Parameterised as CvT's ``Attention`` with ``method='dw_bn'``: ``conv_proj_{q,k,v}``
    (depthwise conv without bias, BN), ``proj_{q,k,v}`` (bias optional, on in CvT-13), ``proj``
    (bias). The attention scale is 1/sqrt(head_dim); CvT's code divides by sqrt(dim), which
    only rescales the logits.

    Cost: params 4d^2 + d (+3d qkv bias) + 3 (d k^r + 2d); MACs 2 T d^2 + 2 (M + P) d^2 (linears)
    + (N + 2M) d (k^r + 2) (convs, BN) + 2 T (M + P) d (attention), T = P + N tokens,
    M = prod(conv_out(grid)) keys from the strided convs.
    """

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        kernel: int,
        stride_kv: int,
        head_dim: int,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.grid, rank = tuple(grid), len(grid)
        self.conv_proj_q = _projection(rank, dim, kernel, 1)
        self.conv_proj_k = _projection(rank, dim, kernel, stride_kv)
        self.conv_proj_v = _projection(rank, dim, kernel, stride_kv)
        self.proj_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], z.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        prefix = t - math.prod(self.grid)
        cls, img = x[:, :prefix], x[:, prefix:].transpose(1, 2).reshape(b, c, *self.grid)

        def tokens(conv: nn.Module) -> torch.Tensor:
            return torch.cat((cls, conv(img).flatten(2).transpose(1, 2)), dim=1)

        q = self._heads(self.proj_q(tokens(self.conv_proj_q)))
        k = self._heads(self.proj_k(tokens(self.conv_proj_k)))
        v = self._heads(self.proj_v(tokens(self.conv_proj_v)))
        y = attend(self, q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))
