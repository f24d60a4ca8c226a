"""Activation functions by registry name."""

from __future__ import annotations

import torch
from torch import nn


class StarReLU(nn.Module):
    """``s * relu(x)**2 + b`` with learnable scalars s and b (MetaFormer Baselines for Vision)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.relu(x) ** 2 + self.bias


class LeakyReLU(nn.LeakyReLU):
    """LeakyReLU with slope 0.2, the super-resolution networks' choice (ESRGAN, PAN, SwinIR)."""

    def __init__(self) -> None:
        super().__init__(negative_slope=0.2)


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "tanh": nn.Tanh,
    "star_relu": StarReLU,
    "identity": nn.Identity,
    "lrelu": LeakyReLU,
}


def make_activation(name: str) -> nn.Module:
    """A new activation module; names are checked by the spec's validation beforehand."""
    return _ACTIVATIONS[name]()
