"""Channel (transposed) self-attention: XCiT's cross-covariance attention and DaViT's channel
group attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.quant.layers import score_operand


class ChannelAttention(nn.Module):
    """Self-attention across channels instead of tokens, within head groups of ``head_dim``
    channels: "DaViT: Dual Attention Vision Transformers" (Ding et al., ECCV 2022; the seed
    paper) and XCiT's cross-covariance attention ("XCiT: Cross-Covariance Image Transformers",
    El-Nouby et al., NeurIPS 2021; not among the seeds).

    Per head, a ``head_dim x head_dim`` attention map is computed from two of the projections
    summed over all tokens, and applied to the third: every output channel is a convex mixture
    of the head's channels, token by token, with the mixture weights seeing the whole image.

    - ``xca`` (XCiT): ``A = softmax(tau_h * q_hat^T k_hat)`` with q and k L2-normalised along the
      tokens and a learned temperature per head; output ``v A^T``.
    - ``davit`` (DaViT): ``A = softmax((k / sqrt(head_dim))^T v)``; output ``q A^T``.

    Layout: sequence ``(B, N, C)`` (class tokens pass by). Complexity O(N d head_dim + N d^2).
    Parameterised as XCiT's ``XCA`` (qkv optional bias, proj, ``temperature`` per head) or
    timm's DaViT ``ChannelAttention`` (no temperature).

    Cost: params 4d^2 + d (+3d qkv bias) (+ heads for xca); MACs 4 N d^2 + 2 N d head_dim.
    """

    QUANT_SCORES = True  # score_operand(): the policy may quantize q, k, v and the softmax

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], head_dim: int, qkv_bias: bool, style: str
    ) -> None:
        super().__init__()
        if style not in ("xca", "davit"):
            raise ValueError(f"unknown channel attention style {style!r}")
        self.heads, self.head_dim, self.style = dim // head_dim, head_dim, style
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.temperature: nn.Parameter | None = None
        if style == "xca":
            self.temperature = nn.Parameter(torch.ones(self.heads, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # (3, B, heads, head_dim, N): channels as rows, tokens as columns
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 4, 1)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.temperature is not None:
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        # the matmul operands, on the activation grid when the block's policy quantizes
        q, k, v = (score_operand(self, role, t) for role, t in (("q", q), ("k", k), ("v", v)))
        if self.temperature is not None:
            attn = (q @ k.transpose(-1, -2)) * self.temperature
            y = score_operand(self, "probs", attn.softmax(dim=-1)) @ v
        else:
            attn = (k * self.head_dim**-0.5) @ v.transpose(-1, -2)
            y = score_operand(self, "probs", attn.softmax(dim=-1)) @ q
        return self.proj(y.permute(0, 3, 1, 2).reshape(b, n, c))
