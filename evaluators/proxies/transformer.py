"""The DSS indicator of TF-TAS, for transformers and hybrids.

Zhou et al. 2022, "Training-free Transformer Architecture Search" (CVPR), Eq. 4-6: the DSS
indicator is ``S = sum_MSA ||dR/dW||_nuc ||W||_nuc + sum_MLP |dR/dW (.) W|``, the *synaptic
diversity* of the multi-head self-attention weight matrices (a rank measure: attention that
collapses to low rank scores low) plus the *synaptic saliency* of the MLP weights (SynFlow's
saliency). As in the reference code, ``R`` is SynFlow's: the sum of the outputs of the network
whose parameters are replaced by their absolute values, on one all-ones input, with batch norm
inert (here: eval mode with the initial running statistics, an affine identity).

What counts as MSA and MLP in a hybrid (TF-TAS only knew ViT blocks):

- MSA: every weight tensor of an attention-like token mixer, i.e. a mixer of seed-catalog families
  M01-M09 (`families.ATTENTION_FAMILIES`: dense, window, neighbourhood, sparse, reduced-KV, routed,
  linear, additive and frequency-split attention). A tensor with more than two dimensions (a conv
  kernel inside such a mixer, a relative-position table) is read as the matrix
  ``(out, everything else)`` for the nuclear norm.
- MLP: every other weight tensor, which includes the channel mixers (TF-TAS's MLP), the weights of
  non-attention token mixers (conv, pooling has none, spectral filters, scans, token MLPs), stems,
  downsamplers and the head. TF-TAS scores its classifier with saliency too; it leaves the patch
  embedding out only because its super-network stores it apart, so it is kept here.

A network with no attention scores exactly its saliency part (a SynFlow over the weight
tensors); one with no weights at all cannot be scored. Returns the natural **log** of ``S``, as
`synflow` does, for the same reason: the raw value overflows with depth.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from evaluators.proxies.data_free import ones_like_input
from evaluators.proxies.families import attention_classes
from evaluators.proxies.registry import ProxyError, proxy, real, weights
from search_space.spec import ArchSpec


def _attention_weights(model: nn.Module) -> set[int]:
    """Ids of the weight tensors that belong to attention-like token mixers."""
    classes = attention_classes()
    ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, classes):
            ids.update(id(p) for p in weights(module))
    return ids


def _nuclear(t: torch.Tensor) -> torch.Tensor:
    t = real(t).double()
    matrix = t.reshape(t.shape[0], -1) if t.dim() != 2 else t
    return torch.linalg.matrix_norm(matrix, ord="nuc")


def _dss_log(model: nn.Module, inputs: torch.Tensor, spec: ArchSpec, dtype: torch.dtype) -> float:
    model.to(dtype)
    model.eval()
    msa = _attention_weights(model)
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    ws = list(weights(model))
    if not ws:
        raise ProxyError("dss: the model has no weight tensors")
    total = model(ones_like_input(inputs, dtype, spec)).double().sum()
    scale = float(total.abs().detach())
    if not math.isfinite(scale):
        raise OverflowError(f"dss: R overflows in {dtype}")
    # R / |R| keeps the gradients near 1 at any depth; every term is linear in the gradient, so
    # log |R| is added back at the end
    grads = torch.autograd.grad(total / scale if scale > 0 else total, ws, allow_unused=True)
    score = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for w, g in zip(ws, grads, strict=True):
        if g is None:
            continue
        if id(w) in msa:
            score += _nuclear(g) * _nuclear(w.detach())
        else:
            score += (real(g) * real(w.detach())).double().abs().sum()
    if not float(score) > 0:
        raise ProxyError("dss: every synaptic diversity and saliency is zero")
    return math.log(float(score)) + (math.log(scale) if scale > 0 else 0.0)


@proxy("dss")
def dss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec) -> float:
    """TF-TAS's DSS indicator (Zhou et al. 2022), as a log; see the module docstring for which
    weights count as MSA and which as MLP. Data-free: only the batch's shape is used. Runs in
    float32, and in float64 when the float32 forward overflows."""
    errors: list[str] = []
    for dtype in (torch.float32, torch.float64):
        try:
            return _dss_log(copy.deepcopy(model), inputs, spec, dtype)
        except OverflowError as err:
            errors.append(str(err))
    raise ProxyError("; ".join(errors))
