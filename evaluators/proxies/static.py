"""Proxies that need no forward pass: parameter count, analytic MACs and weight norms."""

from __future__ import annotations

import torch
from torch import nn

from evaluators.proxies.registry import proxy, real, weights
from search_space.costs import spec_cost
from search_space.spec import ArchSpec


@proxy("params")
def params(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """Learnable parameters, from the analytic `spec_cost` (equal to the built model's count)."""
    return float(spec_cost(spec).params)


@proxy("macs")
def macs(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec) -> float:
    """Multiply-accumulates per sample, from the analytic `spec_cost` (fvcore conventions)."""
    return float(spec_cost(spec).macs)


@proxy("l2_norm")
def l2_norm(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """Sum over weight tensors of their L2 norm at initialisation (the ``l2_norm`` baseline of
    Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS"). Complex filters count by
    their real and imaginary parts."""
    with torch.no_grad():
        return float(sum(real(p).double().norm() for p in weights(model)))
