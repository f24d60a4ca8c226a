"""Data-free proxies: synflow and zen. They ignore the batch's values (only its shape and dtype
tell them what input the model takes)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from evaluators.proxies.registry import ProxyError, proxy, real
from search_space.spec import ArchSpec

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _Overflow(ProxyError):
    """The forward pass overflowed in this precision; a wider one may not."""


def ones_like_input(inputs: torch.Tensor, dtype: torch.dtype, spec: ArchSpec) -> torch.Tensor:
    """SynFlow's input: one all-ones sample of the batch's shape (shared with `transformer.dss`)."""
    if inputs.is_floating_point():
        return torch.ones((1, *inputs.shape[1:]), dtype=dtype, device=inputs.device)
    # token ids: every position holds id 1 (id 0 when the vocabulary has a single token)
    token = min(1, spec.input.vocab_size - 1)
    return torch.full((1, *inputs.shape[1:]), token, dtype=inputs.dtype, device=inputs.device)


def _synflow_log(
    model: nn.Module, inputs: torch.Tensor, spec: ArchSpec, dtype: torch.dtype
) -> float:
    model.to(dtype)
    model.eval()  # batch norm with its initial running stats: an affine map, no batch statistics
    with torch.no_grad():
        for p in model.parameters():  # the linearised network of the paper: |theta|
            p.abs_()
    model.zero_grad(set_to_none=True)
    out = model(ones_like_input(inputs, dtype, spec))
    total = out.double().sum()
    scale = float(total.abs().detach())
    if not math.isfinite(scale):
        raise _Overflow(f"synflow: R overflows in {dtype}")
    # dividing R by |R| keeps every gradient near 1 whatever the depth; log |R| is added back
    (total / scale if scale > 0 else total).backward()
    saliency = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for p in model.parameters():
        if p.grad is not None:
            saliency += (real(p.detach()) * real(p.grad)).double().abs().sum()
    if not float(saliency) > 0:
        raise ProxyError("synflow: every saliency is zero")
    return math.log(float(saliency)) + (math.log(scale) if scale > 0 else 0.0)


@proxy("synflow")
def synflow(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """SynFlow (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
    conserving synaptic flow"): ``sum |theta * dR/dtheta|`` with ``R`` the sum of the outputs of the
    network whose parameters are replaced by their absolute values, on one all-ones input.

    Returns the natural **log** of that sum: the raw value grows exponentially with depth and
    overflows float32 (and float64 for deep nets). The network runs in float32, and again in
    float64 if the float32 forward overflows, in eval mode so batch norm uses its initial running
    stats (mean 0, variance 1: no batch statistics, as the paper's data-free setting needs); R is
    normalised before the backward pass with ``log |R|`` added back. Complex filters enter through
    their real/imaginary parameter pairs.
    """
    errors: list[str] = []
    # float32 first: with R normalised it is accurate to ~1e-6 and far faster than float64 on CPU
    # (no oneDNN kernels); float64 only when the float32 forward overflows or an op rejects it
    for dtype in (torch.float32, torch.float64):
        try:
            return _synflow_log(copy.deepcopy(model), inputs, spec, dtype)
        except _Overflow as err:
            errors.append(str(err))
        except ProxyError:
            raise
        except (RuntimeError, NotImplementedError) as err:
            errors.append(f"{dtype}: {err}")
    raise ProxyError("synflow failed: " + "; ".join(errors))


_ZEN_FLOOR = 1e-30


def _gaussian_init(model: nn.Module) -> None:
    """Zen-NAS's initialisation: every conv and linear weight from N(0, 1), biases 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear):
                m.weight.normal_()
                if m.bias is not None:
                    m.bias.zero_()


@proxy("zen")
def zen(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    spec: ArchSpec,
    reinit: bool = True,
) -> float:
    """Zen-score (Lin et al. 2021, "Zen-NAS: A Zero-Shot NAS for High-Performance Image
    Recognition"): ``log E ||f(x) - f(x + a e)||_1 + sum_BN log sqrt(mean running_var)`` with
    Gaussian ``x`` and ``e``, ``a = 0.01`` and ``f`` the pre-head features (the head's input).

    Data-free: only the batch's shape is used. As in Zen-NAS, every conv and linear weight is
    re-drawn from N(0, 1) first (``reinit``); batch norms run in train mode with momentum 1, so
    their running variance is exactly the batch variance of the perturbed pass (the paper's
    variance correction), and norms that only saw zeros are skipped. Features that do not depend
    on the input at all score at the floor (log 1e-30). Token ids cannot be perturbed, so for id
    inputs the stem's output (the token embeddings) is replaced by the Gaussian.
    """
    model.train()
    for m in model.modules():
        if isinstance(m, _BATCH_NORMS):
            m.momentum = 1.0
    if reinit:
        _gaussian_init(model)
    head = getattr(model, "head", None)
    features: list[torch.Tensor] = []
    handles: list[Any] = []
    if isinstance(head, nn.Module):
        handles.append(head.register_forward_pre_hook(lambda _m, a: features.append(a[0])))

    # what the first layer sees: the Gaussian batch itself, or for token ids the embeddings;
    # drawn on the CPU, so every device sees the same Gaussians
    current: list[torch.Tensor] = []
    with torch.no_grad():
        if inputs.is_floating_point():
            x = torch.randn(inputs.shape, dtype=inputs.dtype)
        else:
            stem = getattr(model, "stem", None)
            if not isinstance(stem, nn.Module):
                raise ProxyError("zen: integer inputs and no `stem` module to inject Gaussians at")
            x = torch.randn(stem(inputs).shape)
            handles.append(stem.register_forward_hook(lambda _m, _i, _o: current[-1]))
        noise = torch.randn_like(x).to(inputs.device)
        x = x.to(inputs.device)
        try:
            outs = []
            for batch in (x, x + 0.01 * noise):
                current.append(batch)
                outs.append(model(batch if inputs.is_floating_point() else inputs))
        finally:
            for h in handles:
                h.remove()
    out1, out2 = outs
    f1, f2 = (features[0], features[1]) if len(features) >= 2 else (out1, out2)
    delta = float(real(f1 - f2).double().abs().flatten(1).sum(1).mean())
    if not math.isfinite(delta):
        raise ProxyError("zen: the perturbed features are not finite")
    # features that ignore the input (a cell whose output is cut off from its input) get the
    # lowest score rather than log(0)
    delta = max(delta, _ZEN_FLOOR)
    correction = 0.0
    for m in model.modules():
        if isinstance(m, _BATCH_NORMS) and m.running_var is not None:
            var = float(m.running_var.double().mean())
            # a norm that only ever saw zeros (its input is cut off by `none` edges) carries no
            # signal; counting it would add log(0)
            if var > 0:
                correction += 0.5 * math.log(var)
    return math.log(delta) + correction
