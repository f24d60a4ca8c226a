"""Quantization sensitivity: how much a spec's quantization policy perturbs the network's output.

Output perturbation under quantization is the training-free sensitivity measure of mixed-precision
work: ZeroQ (Cai et al., CVPR 2020) sums, per layer, the KL divergence between the outputs of the
float network and the network with only that layer quantized, and uses it to allocate bits;
HAWQ (Dong et al., ICCV 2019) ranks layers by Hessian trace instead. Here the unit is a block of
the spec (and one group for the stem, downsamplers and head), the probe is the block's own policy,
and the distance is the relative squared error of the logits, which needs no labels.

`block_sensitivity` returns the per-block figures (to seed a bit allocation: probe every block at
the same bits and give the most sensitive blocks more); the ``quant_sensitivity`` proxy sums them
for the spec's policy and negates the log so that higher is better (more robust), like every
proxy.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from evaluators.proxies.registry import proxy
from search_space.nn.quant.policy import policy_groups, quantize_module, strip_policy
from search_space.spec import ArchSpec, Quant

# Added to the summed perturbation before the log: a float policy (no perturbation) scores 12.
FLOOR = 1e-12


@torch.no_grad()
def block_sensitivity(
    model: nn.Module, spec: ArchSpec, inputs: torch.Tensor, *, probe: Quant | None = None
) -> dict[str, float]:
    """Relative output error ``||f_b(x) - f(x)||^2 / ||f(x)||^2`` with only group ``b``
    quantized (at its policy, or at ``probe`` for every group), for each block and for the
    boundary group (see `search_space.nn.quant.policy.policy_groups`).

    ``model`` is left untouched: the work happens on a float copy, in eval mode, with dynamic
    (per-batch min-max) ranges.
    """
    work = strip_policy(copy.deepcopy(model)).eval()
    reference = work(inputs)
    norm = reference.float().square().sum().clamp_min(1e-30)
    scores: dict[str, float] = {}
    for name, modules, quant in policy_groups(work, spec):
        quant = probe if probe is not None else quant
        if quant.is_float:
            scores[name] = 0.0
            continue
        done: set[int] = set()
        for module in modules:
            quantize_module(module, quant, done=done)
        error = (work(inputs) - reference).float().square().sum() / norm
        scores[name] = float(error)
        for module in modules:
            strip_policy(module)
    return scores


@proxy("quant_sensitivity")
def quant_sensitivity(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """``-log10(FLOOR + sum of block_sensitivity)`` under the spec's own policy: higher means
    the policy perturbs the logits less (ZeroQ-style output perturbation, Cai et al., CVPR
    2020). A float spec scores ``-log10(FLOOR)`` = 12."""
    total = sum(block_sensitivity(model, spec, inputs).values())
    return -math.log10(FLOOR + total)
