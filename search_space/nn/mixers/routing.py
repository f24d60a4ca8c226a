"""Bi-level routing attention (BiFormer) in plain torch: gather the top-k regions' keys and
values per region, then dense attention within the gathered set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.convs import conv_nd
from search_space.nn.mixers.windows import window_partition, window_reverse
from search_space.nn.quant.layers import attend
from search_space.ops.token_mixers.local_attention import region_geometry


class RoutingAttention(nn.Module):
    """Bi-level routing attention: "BiFormer: Vision Transformer with Bi-Level Routing
    Attention" (Zhu et al., CVPR 2023).

    The grid is cut into regions (``n_win`` per axis). Region-level routing: the mean query and
    mean key of every region give an R x R affinity, and each region keeps its ``topk`` most
    affine regions (hard, not differentiated, as in BiFormer). Token-level attention: every query
    attends all tokens of its region's routed regions. A depthwise conv on V (LePE, BiFormer's
    ``side_dwconv``) is added before the output projection.

    Layout: grid_last ``(B, *grid, C)``; 1-D and 2-D grids. Complexity O(N k (N/R) d + R^2 d +
    N d^2). Parameterised as BiFormer's ``BiLevelRoutingAttention`` with ``qk_dim = dim``,
    identity KV downsampling and ``param_attention='qkvo'``: a fused qkv linear (bias), the LePE
    conv (bias) and the output linear. ``topk`` >= the region count is global attention plus
    LePE, which is BiFormer's last stage (there ``AttentionLePE``, without qkv bias and with the
    LePE on the block input: same parameter count).

    Differences from the official code, on purpose: the attention scale is 1/sqrt(head_dim)
    (BiFormer's BRA uses 1/sqrt(dim), which its author notes is a slip); grids that ``n_win``
    does not divide are padded after the projection and padding keys are masked out (BiFormer's
    ``auto_pad`` pads the input, so zero tokens are attended), and region means average real
    tokens only; region geometry: `region_geometry`.

    Cost: params 4d^2 + d (+3d qkv bias) (+ d k^r + d LePE); MACs 4 N d^2 + R^2 d (routing) +
    2 N_pad k T d (attention, T tokens per region) + N d k^r (LePE).
    """

    counts: torch.Tensor
    key_pad: torch.Tensor | None

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        n_win: int,
        topk: int,
        head_dim: int,
        qkv_bias: bool,
        lepe_kernel: int,
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.grid = tuple(grid)
        geo = region_geometry(self.grid, n_win, topk)
        self.sizes, self.padded, self.topk = geo.sizes, geo.padded, geo.topk
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.lepe: nn.Module | None = None
        if lepe_kernel:
            self.lepe = conv_nd(
                len(grid), dim, dim, lepe_kernel, padding=lepe_kernel // 2, groups=dim
            )
        self.proj = nn.Linear(dim, dim)
        pad = torch.ones(self.padded, dtype=torch.bool)
        pad[tuple(slice(0, g) for g in self.grid)] = False
        pad = window_partition(pad[None, ..., None], self.sizes)[0, ..., 0]  # (R, T)
        self.register_buffer("counts", (~pad).sum(-1, keepdim=True).float(), persistent=False)
        self.register_buffer("key_pad", pad if pad.any() else None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[-1]
        qkv = self.qkv(x)
        lepe = 0.0
        if self.lepe is not None:
            lepe = self.lepe(qkv[..., 2 * c :].movedim(-1, 1)).movedim(1, -1)
        pads = [p - g for g, p in zip(self.grid, self.padded, strict=True)]
        if any(pads):
            qkv = F.pad(qkv, [0, 0, *(p for pad in reversed(pads) for p in (0, pad))])
        q, k, v = window_partition(qkv, self.sizes).chunk(3, dim=-1)  # each (B, R, T, C)
        r, t = q.shape[1], q.shape[2]
        # routing: region means over real tokens (padding is zero after the projection)
        q_region = q.detach().sum(2) / self.counts
        k_region = k.detach().sum(2) / self.counts
        routed = (q_region @ k_region.transpose(-1, -2)).topk(self.topk, dim=-1).indices
        batch = torch.arange(b, device=x.device)[:, None, None]
        # (B, R, topk * T, heads, head_dim) -> (B, R, heads, topk * T, head_dim)
        k = k[batch, routed].reshape(b, r, -1, self.heads, self.head_dim).transpose(2, 3)
        v = v[batch, routed].reshape(b, r, -1, self.heads, self.head_dim).transpose(2, 3)
        q = q.reshape(b, r, t, self.heads, self.head_dim).transpose(2, 3)
        mask = None
        if self.key_pad is not None:
            mask = ~self.key_pad[routed].reshape(b, r, 1, 1, -1)
        y = attend(self, q, k, v, attn_mask=mask)
        y = window_reverse(y.transpose(2, 3).reshape(b, r, t, c), self.sizes, self.padded)
        if any(pads):
            y = y[(slice(None), *(slice(0, g) for g in self.grid))]
        return self.proj(y + lepe)
