"""The MAC counter's extra handlers: what fvcore alone misses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.counting import count_macs
from search_space.ops.base import fft_macs


class _Sdpa(nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, q, q)


class _Fft(nn.Module):
    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.fft.rfftn(x, dim=self.dims, norm="ortho")
        return torch.fft.irfftn(f, s=[x.shape[d] for d in self.dims], dim=self.dims, norm="ortho")


def test_attention_matmuls_are_counted() -> None:
    q = torch.randn(1, 4, 10, 8)  # batch, heads, tokens, head_dim
    assert count_macs(_Sdpa(), q) == 4 * (10 * 10 * 8) * 2


def test_fft_counts_follow_the_shared_formula_with_explicit_dims() -> None:
    x = torch.randn(1, 6, 8, 8)
    assert count_macs(_Fft((2, 3)), x) == 2 * fft_macs(64, 6)
    assert count_macs(_Fft((1, 2)), torch.randn(1, 8, 8, 6)) == 2 * fft_macs(64, 6)
    assert count_macs(_Fft((2,)), torch.randn(2, 3, 16)) == 2 * fft_macs(16, 2 * 3)


def test_counting_restores_training_mode() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    model.train()
    assert count_macs(model, torch.randn(2, 4)) == 2 * (16 + 8)
    assert model.training
