"""Focused linear attention (FLatten Transformer) in plain torch, within windows."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.convs import conv_nd
from search_space.nn.mixers.windows import window_partition, window_reverse
from search_space.ops.token_mixers.attention import window_geometry

_EPS = 1e-6


def focus(x: torch.Tensor, p: float) -> torch.Tensor:
    """FLatten's focusing map ``||x|| x^p / ||x^p||`` on positive features: keeps the norm,
    sharpens the direction towards the dominant channels."""
    xp = x**p
    return xp / xp.norm(dim=-1, keepdim=True) * x.norm(dim=-1, keepdim=True)


class FocusedLinearAttention(nn.Module):
    """Focused linear attention: "FLatten Transformer: Vision Transformer using Focused Linear
    Attention" (Han et al., ICCV 2023).

    Queries and keys go through ReLU (plus a small constant), a learned softplus scale per
    channel and the focusing map ``phi_p``; each head then computes
    ``phi(q_i) (sum_j phi(k_j)^T v_j) / (phi(q_i) . sum_j phi(k_j) + n eps)`` over the n keys of
    its window (FLatten divides both by n, eps on the mean), K^T V first so the cost is linear in
    the tokens. A depthwise conv on V (shared by the heads) restores the rank of the
    attention map. It runs within Swin windows, as in FLatten-Swin (whose stages 1-2 use a window
    covering the whole map); a learned positional encoding per window position is added to K.

    Layout: grid_last ``(B, *grid, C)``; 1-D and 2-D grids. Complexity O(N d^2 + N d k^r).
    Parameterised as FLatten's ``FocusedLinearAttention``: qkv (optional bias) and output
    projections, ``dwc`` (head_dim channels, biased), ``scale`` (d) and ``positional_encoding``
    (window tokens x d). Windows are clipped to the grid; a grid the window does not divide is
    padded after the projection and padding keys are zeroed, so they add nothing; there is no
    shifted variant (FLatten-Swin-T's linear stages have one window per map).

    Cost: params 4d^2 + d (+3d qkv bias) + head_dim (k^r + 1) + d + T d; MACs 4 N d^2 +
    2 N_pad d head_dim + N_pad d (normaliser) + N_pad d k^r (dwconv).
    """

    key_pad: torch.Tensor | None
    norm_eps: torch.Tensor

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        window: int,
        head_dim: int,
        qkv_bias: bool,
        focusing_factor: float,
        kernel: int,
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.grid, self.focusing_factor = tuple(grid), focusing_factor
        geo = window_geometry(self.grid, window, shift=False)
        self.windows, self.padded = geo.windows, geo.padded
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.dwc = conv_nd(
            len(grid), head_dim, head_dim, kernel, padding=kernel // 2, groups=head_dim
        )
        self.scale = nn.Parameter(torch.zeros(1, 1, dim))
        self.positional_encoding = nn.Parameter(torch.zeros(1, geo.tokens, dim))
        nn.init.trunc_normal_(self.positional_encoding, std=0.02)
        pad = torch.ones(self.padded, dtype=torch.bool)
        pad[tuple(slice(0, g) for g in self.grid)] = False
        pad = window_partition(pad[None, ..., None], self.windows)[0]  # (windows, T, 1)
        self.register_buffer("key_pad", pad if pad.any() else None, persistent=False)
        # FLatten normalises with means over the window's n keys, eps added to the mean:
        # q K^T V / (q . sum(K) + n eps); n counts real keys only
        real = (~pad).sum(dim=(1, 2)).float() * _EPS
        self.register_buffer("norm_eps", real.view(-1, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[-1]
        qkv = self.qkv(x)
        pads = [p - g for g, p in zip(self.grid, self.padded, strict=True)]
        if any(pads):
            qkv = F.pad(qkv, [0, 0, *(p for pad in reversed(pads) for p in (0, pad))])
        q, k, v = window_partition(qkv, self.windows).chunk(3, dim=-1)  # (B, windows, T, C)
        nw, t = q.shape[1], q.shape[2]
        k = k + self.positional_encoding
        scale = F.softplus(self.scale)
        q = focus((F.relu(q) + _EPS) / scale, self.focusing_factor)
        k = focus((F.relu(k) + _EPS) / scale, self.focusing_factor)
        if self.key_pad is not None:
            k = k.masked_fill(self.key_pad, 0.0)
        q, k, v = (
            z.reshape(b, nw, t, self.heads, self.head_dim).transpose(2, 3) for z in (q, k, v)
        )
        # (B, windows, heads, T, head_dim); normaliser 1 / (q . sum_j k_j + n eps)
        z = 1.0 / (q @ k.sum(dim=-2, keepdim=True).transpose(-1, -2) + self.norm_eps)
        y = (q @ (k.transpose(-1, -2) @ v)) * z
        v_maps = (
            v.reshape(-1, t, self.head_dim)
            .transpose(1, 2)
            .reshape(-1, self.head_dim, *self.windows)
        )
        y = y + self.dwc(v_maps).flatten(2).transpose(1, 2).reshape(y.shape)
        y = window_reverse(y.transpose(2, 3).reshape(b, nw, t, c), self.windows, self.padded)
        if any(pads):
            y = y[(slice(None), *(slice(0, g) for g in self.grid))]
        return self.proj(y)
