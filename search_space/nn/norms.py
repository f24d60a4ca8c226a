"""Norms over the ``(B, T, C)`` token tensor that flows between blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.LayerNorm):
    def __init__(self, dim: int) -> None:
        super().__init__(dim, eps=1e-6)


class RMSNorm(nn.RMSNorm):
    def __init__(self, dim: int) -> None:
        super().__init__(dim, eps=1e-6)


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm per channel over batch and tokens, on channels-last tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.transpose(1, -1)).transpose(1, -1)


class GroupNorm1(nn.GroupNorm):
    """GroupNorm with one group: statistics over all channels and tokens of a sample."""

    def __init__(self, dim: int) -> None:
        super().__init__(1, dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return F.group_norm(x.unsqueeze(-1), 1, self.weight, self.bias, self.eps).squeeze(-1)
        return F.group_norm(x.transpose(1, -1), 1, self.weight, self.bias, self.eps).transpose(
            1, -1
        )


class NoNorm(nn.Identity):
    def __init__(self, dim: int) -> None:
        super().__init__()


_NORMS: dict[str, type[nn.Module]] = {
    "layernorm": LayerNorm,
    "rmsnorm": RMSNorm,
    "batchnorm": BatchNorm,
    "groupnorm": GroupNorm1,
    "none": NoNorm,
}


def make_norm(name: str, dim: int) -> nn.Module:
    """A norm over the last axis of channels-last tensors (any rank)."""
    return _NORMS[name](dim)


class ChannelsFirstNorm(nn.Module):
    """Applies a channels-last norm to a channels-first ``(B, C, *grid)`` tensor."""

    def __init__(self, name: str, dim: int) -> None:
        super().__init__()
        self.norm = make_norm(name, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.norm, nn.BatchNorm1d):  # native channels-first: no transposes
            return nn.BatchNorm1d.forward(self.norm, x.flatten(2)).reshape(x.shape)
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)
