"""CAS-ViT's convolutional additive token mixer and local integration, "CAS-ViT: Convolutional
Additive Self-attention Vision Transformers for Efficient Mobile Applications" (official
``rcvit.py``), on 1-D or 2-D grids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.convs import conv_nd
from search_space.nn.norms import ChannelsFirstNorm


def _global_average(x: torch.Tensor) -> torch.Tensor:
    """Adaptive average pooling to one cell (counted at 1 MAC per input element, as fvcore)."""
    if x.dim() == 4:
        return F.adaptive_avg_pool2d(x, 1)
    return F.adaptive_avg_pool1d(x, 1)


class _SpatialGate(nn.Module):
    """``x * sigmoid(conv1x1_to_1(relu(BN(dw(x)))))``: one gate per position."""

    def __init__(self, rank: int, dim: int, kernel: int) -> None:
        super().__init__()
        self.dw = conv_nd(rank, dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = ChannelsFirstNorm("batchnorm", dim)
        self.score = conv_nd(rank, dim, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.score(torch.relu(self.norm(self.dw(x)))))


class _ChannelGate(nn.Module):
    """``x * sigmoid(conv1x1(mean(x)))``: one gate per channel."""

    def __init__(self, rank: int, dim: int) -> None:
        super().__init__()
        self.fc = conv_nd(rank, dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(_global_average(x)))


class AdditiveTokenMixer(nn.Module):
    """``proj(dwc(C(S(q)) + C(S(k))) * v)`` with ``q, k, v = qkv(x)`` (1x1 conv), S the spatial
    gate, C the channel gate, dwc and proj depthwise k^r convs with bias. No token-token map.

    Layout: grid ``(B, C, *grid)``. Complexity O(N d^2 + N d k^r).
    Cost: params 3d^2 (+3d) + 2 (d^2 + d k^r + 4d) + 2 d (k^r + 1);
    MACs 3 N d^2 + 2 (N d (k^r + 4) + d^2) + 2 N d k^r.
    """

    def __init__(self, dim: int, *, grid: tuple[int, ...], kernel: int, qkv_bias: bool) -> None:
        super().__init__()
        rank = len(grid)
        self.qkv = conv_nd(rank, dim, 3 * dim, 1, bias=qkv_bias)
        self.oper_q = nn.Sequential(_SpatialGate(rank, dim, kernel), _ChannelGate(rank, dim))
        self.oper_k = nn.Sequential(_SpatialGate(rank, dim, kernel), _ChannelGate(rank, dim))
        self.dwc = conv_nd(rank, dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.proj = conv_nd(rank, dim, dim, kernel, padding=kernel // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        return self.proj(self.dwc(self.oper_q(q) + self.oper_k(k)) * v)


class LocalIntegration(nn.Module):
    """CAS-ViT's local perception: 1x1 (d -> m), norm, depthwise k^r, act, 1x1 (m -> d), all
    convs with bias; m = round(ratio * d). In CAS-ViT it has its own shortcut and no norm in front.

    Layout: grid. Complexity O(N d m + N m k^r).
    Cost: params 2 d m + m + d + m (k^r + 1) + 2m (norm); MACs N (2 d m + m k^r) + norm.
    """

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], ratio: float, kernel: int, act: str, norm: str
    ) -> None:
        super().__init__()
        rank, mid = len(grid), round(ratio * dim)
        self.network = nn.Sequential(
            conv_nd(rank, dim, mid, 1),
            ChannelsFirstNorm(norm, mid),
            conv_nd(rank, mid, mid, kernel, padding=kernel // 2, groups=mid),
            make_activation(act),
            conv_nd(rank, mid, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)
