"""HiLo attention (LITv2) in plain torch: windowed Hi-Fi heads beside pooled-key Lo-Fi heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.convs import avg_pool_nd
from search_space.nn.mixers.windows import window_attention_mask, window_partition, window_reverse
from search_space.nn.quant.layers import attend
from search_space.ops.token_mixers.attention import window_geometry
from search_space.ops.token_mixers.local_attention import hilo_heads, lofi_pool


class HiLoAttention(nn.Module):
    """HiLo attention: "Fast Vision Transformers with HiLo Attention" (Pan et al., NeurIPS 2022).

    The heads split in two groups. Hi-Fi heads (high frequencies) attend within non-overlapping
    ``s^k`` windows; Lo-Fi heads (low frequencies) let every token attend keys and values taken
    from the ``s``-average-pooled grid. Each group has its own projections; the outputs are
    concatenated, Hi-Fi first. ``s = 1`` makes every head Lo-Fi without pooling: plain global
    attention (LITv2's last stage).

    Layout: grid_last ``(B, *grid, C)``; 1-D and 2-D grids. Complexity O(N s^k d_hi +
    N^2 d_lo / s^k + N d^2). Parameterised as LITv2's ``HiLo``: ``h_qkv``, ``h_proj`` for the
    Hi-Fi heads, ``l_q``, ``l_kv``, ``l_proj`` for the Lo-Fi heads (qkv bias optional, output
    projections biased). Small or odd grids: Hi-Fi windows are clipped to the grid, padded after
    the projection and padding keys masked (`window_geometry`); the Lo-Fi pooling rounds up
    (`lofi_pool`), where LITv2 requires divisible grids.

    Cost: params d(3 d_hi + 3 d_lo) + d_hi^2 + d_lo^2 + d (+3d qkv bias); MACs
    3 N d d_hi + N d_hi^2 + 2 N_pad s^k d_hi (Hi-Fi) + N d d_lo + 2 M d d_lo + N d_lo^2 +
    2 N M d_lo (Lo-Fi, M pooled tokens), d_hi/d_lo the widths of each group.
    """

    mask: torch.Tensor | None

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        head_dim: int,
        alpha: float,
        window: int,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.head_dim, self.grid = head_dim, tuple(grid)
        self.l_heads, self.h_heads = hilo_heads(dim // head_dim, alpha, window)
        self.l_dim, self.h_dim = self.l_heads * head_dim, self.h_heads * head_dim
        if self.h_heads:
            geo = window_geometry(self.grid, window, shift=False)
            self.windows, self.padded = geo.windows, geo.padded
            self.h_qkv = nn.Linear(dim, 3 * self.h_dim, bias=qkv_bias)
            self.h_proj = nn.Linear(self.h_dim, self.h_dim)
            mask = window_attention_mask(self.grid, geo.windows, geo.shifts, geo.padded)
            self.register_buffer(
                "mask", None if mask is None else mask.unsqueeze(1), persistent=False
            )
        if self.l_heads:
            self.l_q = nn.Linear(dim, self.l_dim, bias=qkv_bias)
            self.l_kv = nn.Linear(dim, 2 * self.l_dim, bias=qkv_bias)
            self.l_proj = nn.Linear(self.l_dim, self.l_dim)
            self.pool: nn.Module | None = None
            if window > 1:
                kernel, _ = lofi_pool(self.grid, window)
                self.pool = avg_pool_nd(len(grid), kernel, stride=kernel, ceil_mode=True)

    def _hifi(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        qkv = self.h_qkv(x)
        pads = [p - g for g, p in zip(self.grid, self.padded, strict=True)]
        if any(pads):
            qkv = F.pad(qkv, [0, 0, *(p for pad in reversed(pads) for p in (0, pad))])
        win = window_partition(qkv, self.windows)
        nw, t = win.shape[1], win.shape[2]
        q, k, v = win.reshape(b, nw, t, 3, self.h_heads, self.head_dim).permute(3, 0, 1, 4, 2, 5)
        y = attend(self, q, k, v, attn_mask=self.mask)
        y = window_reverse(
            y.transpose(2, 3).reshape(b, nw, t, self.h_dim), self.windows, self.padded
        )
        if any(pads):
            y = y[(slice(None), *(slice(0, g) for g in self.grid))]
        return self.h_proj(y)

    def _lofi(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[-1]
        tokens = x.reshape(b, -1, c)
        n = tokens.shape[1]
        q = self.l_q(tokens).reshape(b, n, self.l_heads, self.head_dim).transpose(1, 2)
        src = tokens
        if self.pool is not None:
            src = self.pool(x.movedim(-1, 1)).flatten(2).transpose(1, 2)
        m = src.shape[1]
        kv = self.l_kv(src).reshape(b, m, 2, self.l_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = attend(self, q, kv[0], kv[1])
        return self.l_proj(y.transpose(1, 2).reshape(*x.shape[:-1], self.l_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.l_heads:
            return self._hifi(x)
        if not self.h_heads:
            return self._lofi(x)
        return torch.cat((self._hifi(x), self._lofi(x)), dim=-1)
