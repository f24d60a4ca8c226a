"""Evolutionary search of quantization scales after PTQ (Evol-Q).

Frumkin, Gope and Marculescu, "Jumping through Local Minima: Quantization in the Loss Landscape
of Vision Transformers" (ICCV 2023): after post-training quantization, the loss is very jagged in
the quantization scales, so gradient and Hessian methods stall; small random perturbations of one
block's scales at a time, kept when they lower a contrastive loss on a small calibration set,
jump out of those local minima.

What runs here (our reading of the method, written from the paper's description):

1. The model (trained in float) is quantized as its spec's policy says and calibrated
   (`search_space.nn.quant.policy.apply_policy`, `calibrate`): the PTQ baseline.
2. The quantizers are grouped by block (`policy_groups`: each block of each stage, then the
   boundary: stem, downsamplers, head). For ``passes`` rounds, block by block: draw ``population``
   perturbations of the block's ranges (each quantizer's frozen ``[lo, hi]`` multiplied by
   ``exp(sigma * N(0, 1))``, one factor per quantizer), score each, and keep the best when it beats
   the current ranges.
3. The score is the infoNCE loss (van den Oord et al., 2018) between the quantized model's and the
   float model's outputs on the calibration set: each image's quantized output must be closer
   (cosine similarity / ``temperature``) to its own float output than to the other images'. It
   needs no labels, as Evol-Q's does not.

The calibration set is small (a few hundred images), so a candidate costs one forward pass over
it; everything is seeded, so the same inputs give the same scales.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.quant.policy import apply_policy, calibrate, policy_groups, quantizers
from search_space.nn.quant.quantizers import FakeQuantizer
from search_space.spec import ArchSpec


@dataclass(frozen=True)
class EvolQConfig:
    """Settings of the scale search (the paper's defaults where it gives them, scaled down)."""

    passes: int = 3  # rounds over every block
    population: int = 8  # perturbations tried per block per round
    sigma: float = 0.05  # log-scale spread of a perturbation
    temperature: float = 0.1  # of the infoNCE loss
    calibration: str = "minmax"  # how the PTQ baseline's ranges are set
    seed: int = 0


@dataclass
class EvolQResult:
    baseline_loss: float
    final_loss: float
    accepted: int  # perturbations kept
    tried: int
    history: list[float] = field(default_factory=list)  # loss after each block visit


def info_nce(quantized: torch.Tensor, reference: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive loss: row i of ``quantized`` should match row i of ``reference`` best."""
    q = F.normalize(quantized.flatten(1), dim=1)
    r = F.normalize(reference.flatten(1), dim=1)
    logits = q @ r.T / temperature
    return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))


def quantize_ptq(
    model: nn.Module, spec: ArchSpec, batches: Sequence[torch.Tensor], calibration: str
) -> nn.Module:
    """A quantized copy of ``model`` as ``spec``'s policy says, calibrated on ``batches``."""
    quantized = copy.deepcopy(model).eval()
    apply_policy(quantized, spec)
    calibrate(quantized, batches, calibration)
    return quantized


def block_quantizers(model: nn.Module, spec: ArchSpec) -> list[tuple[str, list[FakeQuantizer]]]:
    """The calibrated (frozen) quantizers of each policy group, groups without any left out."""
    out = []
    for name, modules, _ in policy_groups(model, spec):
        found = [q for m in modules for q in quantizers(m) if q.frozen]
        if found:
            out.append((name, found))
    return out


@torch.no_grad()
def evolve_scales(
    quantized: nn.Module,
    reference: nn.Module,
    spec: ArchSpec,
    calib: torch.Tensor,
    config: EvolQConfig,
) -> EvolQResult:
    """Evol-Q's search on ``quantized`` in place (see the module docstring)."""
    quantized.eval()
    reference.eval()
    target = reference(calib)

    def loss() -> float:
        return float(info_nce(quantized(calib), target, config.temperature))

    gen = torch.Generator().manual_seed(config.seed)
    current = loss()
    result = EvolQResult(baseline_loss=current, final_loss=current, accepted=0, tried=0)
    groups = block_quantizers(quantized, spec)
    for _ in range(config.passes):
        for _name, found in groups:
            start = [(q.lo.clone(), q.hi.clone()) for q in found]
            best, best_ranges = current, start
            for _ in range(config.population):
                factors = torch.exp(config.sigma * torch.randn(len(found), generator=gen))
                for q, (lo, hi), f in zip(found, start, factors.tolist(), strict=True):
                    q.lo, q.hi = lo * f, hi * f
                result.tried += 1
                value = loss()
                if math.isfinite(value) and value < best:
                    best, best_ranges = value, [(q.lo.clone(), q.hi.clone()) for q in found]
            for q, (lo, hi) in zip(found, best_ranges, strict=True):
                q.lo, q.hi = lo, hi
            if best < current:
                result.accepted += 1
                current = best
            result.history.append(current)
    result.final_loss = current
    return result
