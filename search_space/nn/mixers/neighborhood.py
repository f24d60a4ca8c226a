"""Neighbourhood attention (NAT) and dilated neighbourhood attention (DiNAT) in plain torch.

Keys and values of every query's neighbourhood are gathered with a precomputed index (no custom
kernel), and the scores run through `scaled_dot_product_attention` with one query per row, so the
cost counter's handler sees exactly the N k^r d score and weighted-sum MACs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from search_space.nn.quant.layers import attend
from search_space.ops.token_mixers.local_attention import neighborhood_geometry


def _axis_neighbourhood(
    size: int, kernel: int, dilation: int, table_kernel: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key positions ``(size, kernel)`` of every query on one axis, and their bias-table rows.

    The axis splits into ``dilation`` interleaved sub-axes (positions with equal ``i % dilation``);
    on its sub-axis a query's window of ``kernel`` positions is centred on it and shifted inwards at
    the borders (NATTEN's window start). The bias row is the offset in dilated steps, shifted by
    ``table_kernel - 1`` into a ``2 table_kernel - 1`` table.
    """
    keys = torch.empty(size, kernel, dtype=torch.long)
    rows = torch.empty(size, kernel, dtype=torch.long)
    for i in range(size):
        sub, pos = i % dilation, i // dilation
        sub_len = -(-(size - sub) // dilation)
        start = min(max(pos - kernel // 2, 0), sub_len - kernel)
        window = torch.arange(start, start + kernel)
        keys[i] = window * dilation + sub
        rows[i] = window - pos + table_kernel - 1
    return keys, rows


def neighborhood_index(
    grid: tuple[int, ...], kernels: tuple[int, ...], dilations: tuple[int, ...], table_kernel: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, K)`` flat key indices and flat bias-table indices for a rank-r grid.

    A neighbourhood is the product of per-axis windows (as in NATTEN); queries and window
    positions are both in row-major order.
    """
    keys = torch.zeros(1, 1, dtype=torch.long)
    rows = torch.zeros(1, 1, dtype=torch.long)
    side = 2 * table_kernel - 1
    for size, k, dil in zip(grid, kernels, dilations, strict=True):
        axis_keys, axis_rows = _axis_neighbourhood(size, k, dil, table_kernel)
        queries = keys.shape[0] * size
        keys = (keys[:, None, :, None] * size + axis_keys[None, :, None, :]).reshape(queries, -1)
        rows = (rows[:, None, :, None] * side + axis_rows[None, :, None, :]).reshape(queries, -1)
    return keys, rows


class NeighborhoodAttention(nn.Module):
    """(Dilated) neighbourhood attention: "Dilated Neighborhood Attention Transformer" (Hassani
    and Shi, the seed paper), building on "Neighborhood Attention Transformer" (Hassani et al.,
    CVPR 2023; not among the seeds).

    Every token attends the ``k^r`` tokens of its neighbourhood: on each axis, the ``k`` nearest
    positions ``dilation`` apart, the window shifted inwards at the borders so that it always
    holds ``k`` keys. With ``k`` equal to the grid it is global attention.

    Layout: grid_last ``(B, *grid, C)``; 1-D and 2-D grids. Complexity O(N k^r d + N d^2).
    Small grids: see `neighborhood_geometry` (kernel clipped to the axis, dilation to
    ``axis // kernel``). Parameterised as NATTEN's ``NeighborhoodAttention2D``: qkv and output
    projections and a ``heads x (2k-1)^r`` relative position bias, indexed by the offset in
    dilated steps; the table keeps its declared size when the kernel is clipped.

    Cost: params 4d^2 + d (+3d qkv bias) (+ heads (2k-1)^r); MACs 4 N d^2 + 2 N K d,
    K = prod(k_a) keys per query.
    """

    key_index: torch.Tensor
    bias_index: torch.Tensor

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        kernel: int,
        dilation: int,
        head_dim: int,
        qkv_bias: bool,
        rel_pos_bias: bool,
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        kernels, dilations = neighborhood_geometry(tuple(grid), kernel, dilation)
        keys, rows = neighborhood_index(tuple(grid), kernels, dilations, kernel)
        self.register_buffer("key_index", keys, persistent=False)
        self.register_buffer("bias_index", rows, persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rpb: nn.Parameter | None = None
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.zeros(self.heads, *[2 * kernel - 1] * len(grid)))
            nn.init.trunc_normal_(self.rpb, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape[0], x.shape[-1], math.prod(x.shape[1:-1])
        qkv = self.qkv(x.reshape(b, n, c)).reshape(b, n, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        # (B, heads, N, K, head_dim): the neighbourhood of every query, one "batch" row per query
        k, v = k[:, :, self.key_index], v[:, :, self.key_index]
        bias = None
        if self.rpb is not None:
            bias = self.rpb.flatten(1)[:, self.bias_index].unsqueeze(-2)  # (heads, N, 1, K)
        y = attend(self, q.unsqueeze(-2), k, v, attn_mask=bias)
        return self.proj(y.squeeze(-2).transpose(1, 2).reshape(x.shape))
