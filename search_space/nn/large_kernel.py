"""Re-parameterisable large depthwise kernels: RepLKNet ("Scaling Up Your Kernels to 31x31:
Revisiting Large Kernel Design in CNNs") and UniRepLKNet ("UniRepLKNet: A Universal Perception
Large-Kernel ConvNet for Audio, Video, Point Cloud, Time-Series and Image Recognition")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.convs import conv_nd


class ConvBn(nn.Module):
    """Depthwise conv (no bias, 'same' padding for its dilation) followed by batch norm."""

    def __init__(self, rank: int, dim: int, kernel: int, dilation: int) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        conv = conv_nd(
            rank, dim, dim, kernel, padding=pad, dilation=dilation, groups=dim, bias=False
        )
        assert isinstance(conv, nn.Conv1d | nn.Conv2d)  # ranks 1 and 2 (images, sequences)
        self.conv = conv
        self.bn: nn.BatchNorm1d | nn.BatchNorm2d = (
            nn.BatchNorm1d(dim) if rank == 1 else nn.BatchNorm2d(dim)
        )
        self.kernel, self.dilation = kernel, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def fused(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight (dim, 1, size^r) and bias of one conv equal to this branch in eval mode: BN
        folded in, dilation spread out as zeros, the kernel centred in ``size``."""
        mean, var = self.bn.running_mean, self.bn.running_var
        assert mean is not None and var is not None  # tracked by construction
        scale = self.bn.weight / (var + self.bn.eps).sqrt()
        weight = self.conv.weight * scale.reshape(-1, *([1] * (self.conv.weight.dim() - 1)))
        bias = self.bn.bias - mean * scale
        rank = weight.dim() - 2
        span = self.dilation * (self.kernel - 1) + 1
        spread = weight.new_zeros(*weight.shape[:2], *([span] * rank))
        index = (slice(None), slice(None), *([slice(None, None, self.dilation)] * rank))
        spread[index] = weight
        margin = (size - span) // 2
        return F.pad(spread, [margin, margin] * rank), bias


class ReparamDwConv(nn.Module):
    """Sum of a large depthwise Conv-BN and smaller (optionally dilated) depthwise Conv-BN
    branches, all 'same'-padded; `merged` returns the single conv they equal in eval mode.

    Cost: params d (k^r + sum k_i^r) + 2 d (1 + branches); MACs N d (k^r + sum k_i^r) + 2 N d
    per batch norm (fvcore's inference rate).
    """

    def __init__(
        self, rank: int, dim: int, kernel: int, branches: tuple[tuple[int, int], ...]
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.large = ConvBn(rank, dim, kernel, 1)
        self.branches = nn.ModuleList(ConvBn(rank, dim, k, r) for k, r in branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.large(x)
        for branch in self.branches:
            out = out + branch(x)
        return out

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """One k^r depthwise conv with bias computing what this module computes in eval mode."""
        weight, bias = self.large.fused(self.kernel)
        for branch in self.branches:
            assert isinstance(branch, ConvBn)
            w, b = branch.fused(self.kernel)
            weight, bias = weight + w, bias + b
        rank, dim = weight.dim() - 2, weight.shape[0]
        conv = conv_nd(rank, dim, dim, self.kernel, padding=self.kernel // 2, groups=dim)
        assert isinstance(conv, nn.Conv1d | nn.Conv2d) and conv.bias is not None
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        return conv
