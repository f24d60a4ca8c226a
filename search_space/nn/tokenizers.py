"""Stem modules for `search_space.ops.tokenizers`: explicit conv stacks and T2T-ViT's soft split
("Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.convs import conv_nd
from search_space.nn.norms import ChannelsFirstNorm
from search_space.nn.stems import TokenPrefix, _GridStem
from search_space.ops.base import OpContext, conv_out
from search_space.ops.tokenizers import SPLITS, split_grids, stack_layers


class ConvStack(_GridStem):
    """Convolutions with per-conv width, stride and kernel (padding k // 2), each followed by a
    norm (``inner_norm``) and an activation; the last conv's norm and activation are optional.

    Cost: sum over convs of c_in c_out k^r (+ c_out bias) params and N_out times that in MACs,
    plus the norms; then class token and position embedding.
    """

    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        widths: tuple[int, ...],
        strides: tuple[int, ...],
        kernels: tuple[int, ...],
        norm: str,
        act: str,
        inner_norm: bool,
        final_norm: bool,
        final_act: bool,
        bias: bool,
        cls_token: bool,
        pos_embed: str,
    ) -> None:
        super().__init__()
        rank = len(grid)
        params = {"widths": widths, "strides": strides, "kernels": kernels}
        layers_spec = stack_layers(OpContext(dim=in_channels, grid=grid, out_dim=out_dim), params)
        layers: list[nn.Module] = []
        out_grid = list(grid)
        for i, (c_in, c_out, k, s) in enumerate(layers_spec):
            last = i == len(layers_spec) - 1
            layers.append(conv_nd(rank, c_in, c_out, k, s, k // 2, bias=bias))
            if final_norm if last else inner_norm:
                layers.append(ChannelsFirstNorm(norm, c_out))
            if not last or final_act:
                layers.append(make_activation(act))
            out_grid = [conv_out(g, k, s, k // 2) for g in out_grid]
        self.convs = nn.Sequential(*layers)
        self.norm = nn.Identity()
        self.prefix = TokenPrefix(
            out_dim, math.prod(out_grid), cls_token=cls_token, pos_embed=pos_embed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # feature sequences arrive as (B, L, F)
            x = x.transpose(1, 2)
        return self._finish(self.convs(x))


class TokenPerformer(nn.Module):
    """T2T's ``Token_performer``: one-head linear attention with positive random features.

    ``y = v + proj(q' (k'^T v) / (q' sum_t k'_t))`` with ``x' = exp(w x - |x|^2 / 2) / sqrt(m)``
    and m fixed Gaussian orthogonal features w (a buffer: drawn once, never trained), then
    ``y + mlp(LN(y))``. Matmuls rather than einsums so the counter's figure is exact.
    """

    features: torch.Tensor

    def __init__(self, dim: int, emb: int, kernel_ratio: float) -> None:
        super().__init__()
        self.emb, self.m = emb, int(emb * kernel_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.kqv = nn.Linear(dim, 3 * emb)
        self.proj = nn.Linear(emb, emb)
        self.norm2 = nn.LayerNorm(emb)
        self.mlp = nn.Sequential(nn.Linear(emb, emb), nn.GELU(), nn.Linear(emb, emb))
        w = nn.init.orthogonal_(torch.empty(self.m, emb)) * math.sqrt(self.m)
        self.register_buffer("features", w)

    def _positive_features(self, x: torch.Tensor) -> torch.Tensor:
        half_norm = x.square().sum(-1, keepdim=True) / 2
        return torch.exp(x @ self.features.T - half_norm) / math.sqrt(self.m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, q, v = self.kqv(self.norm1(x)).split(self.emb, dim=-1)
        kp, qp = self._positive_features(k), self._positive_features(q)  # (B, T, m)
        normaliser = qp @ kp.sum(dim=1).unsqueeze(-1)  # (B, T, 1)
        context = v.transpose(1, 2) @ kp  # (B, emb, m)
        y = (qp @ context.transpose(1, 2)) / (normaliser + 1e-8)
        y = v + self.proj(y)
        return y + self.mlp(self.norm2(y))


class TokenTransformer(nn.Module):
    """T2T's ``Token_transformer``: one-head softmax attention from ``dim`` to ``emb`` channels
    (qkv without bias, scale dim^-1/2 as the official code), ``v`` as the skip, then
    ``y + mlp(LN(y))`` with an MLP of ratio 1."""

    def __init__(self, dim: int, emb: int) -> None:
        super().__init__()
        self.emb, self.scale = emb, dim**-0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * emb, bias=False)
        self.proj = nn.Linear(emb, emb)
        self.norm2 = nn.LayerNorm(emb)
        self.mlp = nn.Sequential(nn.Linear(emb, emb), nn.GELU(), nn.Linear(emb, emb))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm1(x)).split(self.emb, dim=-1)
        y = v + self.proj(F.scaled_dot_product_attention(q, k, v, scale=self.scale))
        return y + self.mlp(self.norm2(y))


class SoftSplit(_GridStem):
    """T2T module: ``unfold(7, 4, 2)``, T2T layer, re-grid, ``unfold(3, 2, 1)``, T2T layer,
    re-grid, ``unfold(3, 2, 1)``, linear to the width (no norm; T2T-ViT adds its class token and
    sinusoidal positions next). Layout in: image ``(B, C, H, W)``; out: tokens.

    Cost: the two T2T layers (see `search_space.ops.tokenizers.token_mixer_cost`) plus the final
    projection; unfolding is data movement (free).
    """

    def __init__(
        self,
        in_channels: int,
        out_dim: int,
        *,
        grid: tuple[int, ...],
        token_dim: int,
        mixer: str,
        kernel_ratio: float,
        cls_token: bool,
        pos_embed: str,
    ) -> None:
        super().__init__()
        self.grids = split_grids(tuple(grid))
        dims = [in_channels * SPLITS[0][0] ** 2, token_dim * SPLITS[1][0] ** 2]

        def layer(dim: int) -> nn.Module:
            if mixer == "performer":
                return TokenPerformer(dim, token_dim, kernel_ratio)
            return TokenTransformer(dim, token_dim)

        self.layers = nn.ModuleList(layer(d) for d in dims)
        self.splits = nn.ModuleList(nn.Unfold(k, padding=p, stride=s) for k, s, p in SPLITS)
        self.project = nn.Linear(token_dim * SPLITS[2][0] ** 2, out_dim)
        self.norm = nn.Identity()
        self.prefix = TokenPrefix(
            out_dim, math.prod(self.grids[-1]), cls_token=cls_token, pos_embed=pos_embed
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for split, layer, grid in zip(self.splits, self.layers, self.grids, strict=False):
            tokens = layer(split(x).transpose(1, 2))
            x = tokens.transpose(1, 2).reshape(x.shape[0], -1, *grid)
        tokens = self.project(self.splits[-1](x).transpose(1, 2))
        return self.prefix(tokens)
