"""Attention token mixers. Score and weighted-sum matmuls run through
`torch.nn.functional.scaled_dot_product_attention`; the cost counter has a handler for it."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.convs import conv_nd
from search_space.nn.mixers.windows import (
    relative_position_index,
    window_attention_mask,
    window_bias,
    window_partition,
    window_reverse,
)
from search_space.nn.quant.layers import attend, score_operand
from search_space.ops.token_mixers.attention import sr_geometry, window_geometry


class Attention(nn.Module):
    """Global multi-head softmax self-attention (ViT).

    Layout: tokens ``(B, T, C)``, class tokens included. Complexity O(T^2 d + T d^2).
    Cost: params 4d^2 + d (+3d with qkv bias); MACs 4 T d^2 (projections) + 2 T^2 d (QK^T, AV).
    With ``causal`` (GPT), token t attends to tokens <= t through a boolean mask; the dense
    kernel still computes every score, so the cost is unchanged.
    """

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        head_dim: int,
        qkv_bias: bool,
        causal: bool = False,
        scores: str = "softmax",
    ) -> None:
        super().__init__()
        self.heads, self.head_dim, self.causal = dim // head_dim, head_dim, causal
        self.scores = scores
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        mask = causal_mask(t, x.device) if self.causal else None
        if self.scores == "softmax":
            y = attend(self, qkv[0], qkv[1], qkv[2], mask)
        else:
            y = softmax_free(self, qkv[0], qkv[1], qkv[2], mask, self.scores)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


def softmax_free(
    module: nn.Module,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    scores: str,
) -> torch.Tensor:
    """MPCViT's attention without a softmax (Zeng et al., ICCV 2023): ``relu`` normalises
    ReLU(s) by its row sum (one division per row instead of an exponential per score);
    ``scale`` divides the scores by the number of keys (no non-linearity at all). ``s`` is the
    scaled dot product; masked keys get weight 0 and are not counted."""
    q, k, v = (score_operand(module, role, t) for role, t in (("q", q), ("k", k), ("v", v)))
    s = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    keep = mask.to(s.dtype) if mask is not None else None
    if scores == "relu":
        weights = torch.relu(s) if keep is None else torch.relu(s) * keep
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-6)
        # probabilities in [0, 1]: the policy's probability quantizer applies, as to softmax's
        return score_operand(module, "probs", weights) @ v
    keys = float(s.shape[-1]) if keep is None else keep.sum(dim=-1, keepdim=True)
    # signed weights: not probabilities, so the probability quantizer (log2 by default) does not
    # apply; q and k were quantized, which fixes the weights' precision
    return ((s if keep is None else s * keep) / keys) @ v


def causal_mask(tokens: int, device: torch.device) -> torch.Tensor:
    """``(T, T)`` boolean mask, true where query t may attend to key s (s <= t)."""
    return torch.ones(tokens, tokens, dtype=torch.bool, device=device).tril()


class WindowAttention(nn.Module):
    """Swin window multi-head self-attention, optionally shifted, with relative position bias.

    Layout: grid_last ``(B, *grid, C)`` (prefix tokens pass through). Works on 1-D and 2-D grids.
    Complexity O(N M^k d + N d^2) for windows of M^k tokens.

    Geometry (`window_geometry`): the window on each axis is ``min(window, grid[a])``; an axis the
    window spans is not shifted, others shift by ``window // 2`` with Swin's mask. The grid is
    padded up to a multiple of the window after the qkv projection; padding keys are masked out,
    so unlike Swin/timm (which let zero padding tokens be attended) the output does not depend on
    the padding. Relative position bias: a ``prod(2 M_a - 1) x heads`` table (Swin).

    Cost: params 4d^2 + d (+3d with qkv bias) (+ prod(2 M_a - 1) * heads table); MACs
    4 N d^2 (projections, real tokens only) + 2 N_pad T d (QK^T, AV), T = prod(M_a) tokens per
    window, N_pad the padded grid's tokens.
    """

    rel_pos_index: torch.Tensor
    mask: torch.Tensor | None

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        window: int,
        head_dim: int,
        shift: bool,
        qkv_bias: bool,
        rel_pos_bias: bool,
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.grid = tuple(grid)
        geo = window_geometry(self.grid, window, shift)
        self.windows, self.shifts, self.padded = geo.windows, geo.shifts, geo.padded
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_table: nn.Parameter | None = None
        if rel_pos_bias:
            rows = math.prod(2 * w - 1 for w in self.windows)
            self.rel_pos_table = nn.Parameter(torch.zeros(rows, self.heads))
            nn.init.trunc_normal_(self.rel_pos_table, std=0.02)
            self.register_buffer(
                "rel_pos_index", relative_position_index(self.windows), persistent=False
            )
        mask = window_attention_mask(self.grid, self.windows, self.shifts, self.padded)
        # (num_windows, 1, T, T): broadcasts over batch and heads
        self.register_buffer("mask", None if mask is None else mask.unsqueeze(1), persistent=False)

    def _attn_bias(self) -> torch.Tensor | None:
        index = getattr(self, "rel_pos_index", None)
        tokens = math.prod(self.windows)
        return window_bias(self.rel_pos_table, index, tokens, self.heads, self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[-1]
        dims = tuple(range(1, len(self.grid) + 1))
        qkv = self.qkv(x)
        pads = [g_pad - g for g, g_pad in zip(self.grid, self.padded, strict=True)]
        if any(pads):
            # F.pad lists the last axis first; the channel axis is not padded
            qkv = F.pad(qkv, [0, 0, *(p for pad in reversed(pads) for p in (0, pad))])
        if any(self.shifts):
            qkv = torch.roll(qkv, shifts=tuple(-s for s in self.shifts), dims=dims)
        win = window_partition(qkv, self.windows)
        nw, t = win.shape[1], win.shape[2]
        # (3, B, num_windows, heads, T, head_dim)
        q, k, v = win.reshape(b, nw, t, 3, self.heads, self.head_dim).permute(3, 0, 1, 4, 2, 5)
        y = attend(self, q, k, v, attn_mask=self._attn_bias())
        y = window_reverse(y.transpose(2, 3).reshape(b, nw, t, c), self.windows, self.padded)
        if any(self.shifts):
            y = torch.roll(y, shifts=self.shifts, dims=dims)
        if any(pads):
            y = y[(slice(None), *(slice(0, g) for g in self.grid))]
        return self.proj(y)


class SRAttention(nn.Module):
    """PVT spatial-reduction attention: every grid token queries a reduced grid of keys/values.

    Layout: grid_last ``(B, *grid, C)`` (prefix tokens pass through). Works on 1-D and 2-D grids.
    Complexity O(N^2 d / R^k + N d^2).

    Keys and values come from the grid reduced by a conv of kernel = stride = R (clipped to the
    grid per axis, no padding as in PVT, so trailing rows the kernel does not fit are not keys)
    and a LayerNorm; R = 1 skips both and is plain global attention over the grid tokens.

    Cost: params 4d^2 + d (+3d with qkv bias) (+ R^k d^2 + d conv, 2d norm); MACs 4 N d^2 with
    R = 1, else 2 N d^2 + 2 M d^2 + M R^k d^2 + 5 M d (projections, conv, norm), plus 2 N M d
    (QK^T, AV), M = prod(grid_a // R_a) reduced tokens.
    """

    QUANT_SCORES = True  # attend(): the policy may quantize the score path

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], sr_ratio: int, head_dim: int, qkv_bias: bool
    ) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr: nn.Module | None = None
        self.norm: nn.Module | None = None
        if sr_ratio > 1:
            kernel, _ = sr_geometry(tuple(grid), sr_ratio)
            self.sr = conv_nd(len(grid), dim, dim, kernel, stride=kernel)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, *grid, c = x.shape
        tokens = x.reshape(b, -1, c)
        n = tokens.shape[1]
        q = self.q(tokens).reshape(b, n, self.heads, self.head_dim).transpose(1, 2)
        src = tokens
        if self.sr is not None and self.norm is not None:
            reduced = self.sr(tokens.transpose(1, 2).reshape(b, c, *grid))
            src = self.norm(reduced.flatten(2).transpose(1, 2))
        m = src.shape[1]
        kv = self.kv(src).reshape(b, m, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = attend(self, q, kv[0], kv[1])
        return self.proj(y.transpose(1, 2).reshape(b, n, c)).reshape(x.shape)


_LINEAR_EPS = 1e-6


def _elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1


_FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu": _elu_plus_one,
    "relu": F.relu,
}


class LinearAttention(nn.Module):
    """Kernelized linear attention (Katharopoulos et al. 2020).

    ``y_i = phi(q_i) (sum_j phi(k_j)^T v_j) / (phi(q_i) . sum_j phi(k_j))`` per head, with
    phi = elu(x) + 1 or relu; computing ``phi(K)^T V`` first makes it linear in the tokens.

    Layout: tokens ``(B, T, C)``, class tokens included. Complexity O(T d^2).
    Cost: params 4d^2 + d (+3d with qkv bias); MACs 4 T d^2 (projections) + 2 T d head_dim
    (K^T V and Q (K^T V)) + T d (normaliser).

    With ``causal`` the prefix (recurrent) form: ``S_t = sum_{s<=t} phi(k_s)^T v_s`` and
    ``z_t = sum_{s<=t} phi(k_s)`` as running sums, ``y_t = phi(q_t) S_t / (phi(q_t) . z_t)``.
    The per-position outer products and contractions are matmuls of the same MACs (T head_dim^2
    each per head), the running sums are additions (free), so the cost is unchanged; memory holds
    T head_dim^2 states per head.
    """

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        head_dim: int,
        qkv_bias: bool,
        feature_map: str,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if feature_map not in _FEATURE_MAPS:
            raise ValueError(f"unknown feature_map {feature_map!r}")
        self.heads, self.head_dim, self.causal = dim // head_dim, head_dim, causal
        self.feature_map = feature_map
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        phi = _FEATURE_MAPS[self.feature_map]
        q, k, v = phi(qkv[0]), phi(qkv[1]), qkv[2]
        if self.causal:
            y = _prefix_linear_attention(q, k, v)
            return self.proj(y.transpose(1, 2).reshape(b, t, c))
        kv = k.transpose(-2, -1) @ v  # (B, heads, head_dim, head_dim)
        # relu can zero a query's whole feature vector; eps keeps 0 / 0 finite (output 0)
        norm = q @ k.sum(dim=-2).unsqueeze(-1) + _LINEAR_EPS
        y = (q @ kv) / norm
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


def _prefix_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal linear attention on ``(B, heads, T, head_dim)`` features: position t reads the
    running sums of ``phi(k_s)^T v_s`` and ``phi(k_s)`` over s <= t (matmuls for the products, so
    that the counter sees T head_dim^2 MACs each, as in the global form)."""
    states = (k.unsqueeze(-1) @ v.unsqueeze(-2)).cumsum(dim=2)  # (B, h, T, hd, hd)
    y = (q.unsqueeze(-2) @ states).squeeze(-2)
    norm = (q.unsqueeze(-2) @ k.cumsum(dim=2).unsqueeze(-1)).squeeze(-1) + _LINEAR_EPS
    return y / norm
