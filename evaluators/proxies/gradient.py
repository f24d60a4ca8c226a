"""Gradient-saliency proxies: snip, grasp, grad_norm, plain and fisher.

All of them take one cross-entropy loss on the batch with the model in train mode (batch norm uses
batch statistics, as at the start of training) and sum a per-weight saliency. Weights are the
tensors of `registry.weights` (Linear/Conv weights plus the weight tensors of other mixers), all
real (complex filters are stored as real pairs), so FFT, scan and attention paths contribute
without producing complex scores. No proxy here needs a second derivative: GraSP's Hessian-vector
product is a central finite difference, because SDPA's CPU kernels and the custom
``mixnas::linear_scan`` op have no double backward.
"""

from __future__ import annotations

import torch
from torch import nn

from evaluators.proxies.registry import LAYER_TYPES, ProxyError, loss_of, proxy, real, weights
from search_space.spec import ArchSpec


def _grads(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[list[nn.Parameter], list[torch.Tensor]]:
    model.train()
    ws = list(weights(model))
    if not ws:
        raise ProxyError("the model has no weight tensors")
    grads = torch.autograd.grad(loss_of(model, inputs, targets), ws, allow_unused=True)
    return ws, [torch.zeros_like(w) if g is None else g for w, g in zip(ws, grads, strict=True)]


@proxy("snip")
def snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec) -> float:
    """SNIP connection sensitivity ``sum |g * w|`` (Lee et al. 2019, "SNIP: Single-shot Network
    Pruning based on Connection Sensitivity")."""
    ws, gs = _grads(model, inputs, targets)
    return float(
        sum((real(g) * real(w.detach())).abs().double().sum() for w, g in zip(ws, gs, strict=True))
    )


@proxy("plain")
def plain(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """``sum g * w`` without absolute value (the ``plain`` baseline of Abdelfattah et al. 2021)."""
    ws, gs = _grads(model, inputs, targets)
    return float(
        sum((real(g) * real(w.detach())).double().sum() for w, g in zip(ws, gs, strict=True))
    )


@proxy("grad_norm")
def grad_norm(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """Sum over weight tensors of the L2 norm of their gradient (Abdelfattah et al. 2021,
    "Zero-Cost Proxies for Lightweight NAS")."""
    _, gs = _grads(model, inputs, targets)
    return float(sum(real(g).double().norm() for g in gs))


@proxy("grasp")
def grasp(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """GraSP gradient-signal preservation ``sum -w * (H g)`` (Wang et al. 2020, "Picking Winning
    Tickets Before Training by Preserving Gradient Flow"), temperature 1.

    ``H g`` is the central difference ``(grad(w + e g) - grad(w - e g)) / 2e`` with the step
    ``e = 1e-3 |w| / |g|`` (a 0.1% relative move of the weights): exact double backward is not
    available through every mixer, and one method for all keeps scores comparable.
    """
    ws, gs = _grads(model, inputs, targets)
    g_norm = torch.sqrt(sum(real(g).double().square().sum() for g in gs))
    if float(g_norm) == 0.0:
        raise ProxyError("the loss gradient is zero for every weight")
    w_norm = torch.sqrt(sum(real(w).detach().double().square().sum() for w in ws))
    step = float(1e-3 * w_norm / g_norm)
    originals = [w.detach().clone() for w in ws]

    def grads_at(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for w, w0, g in zip(ws, originals, gs, strict=True):
                w.copy_(w0 + sign * step * g)
        return _grads(model, inputs, targets)[1]

    try:
        plus, minus = grads_at(1.0), grads_at(-1.0)
    finally:
        with torch.no_grad():
            for w, w0 in zip(ws, originals, strict=True):
                w.copy_(w0)
    score = torch.zeros((), dtype=torch.float64)
    for w, gp, gm in zip(ws, plus, minus, strict=True):
        hg = (real(gp).double() - real(gm).double()) / (2 * step)
        score -= (real(w).detach().double() * hg).sum()
    return float(score)


@proxy("fisher")
def fisher(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """Fisher information of the activations (Theis et al. 2018, "Faster gaze prediction with
    dense networks and Fisher pruning"; used for NAS by Turner et al. 2020, "BlockSwap").

    Per output channel of every Linear/Conv layer: ``0.5 * mean_batch (sum_positions a * dL/da)^2``,
    summed over channels and layers. Taking the Linear/Conv outputs as the activations (rather than
    an inserted identity after each ReLU) covers mixers whose nonlinearity is not a ReLU module.
    """
    model.train()
    saliency: list[torch.Tensor] = []

    def forward_hook(module: nn.Module, _inp: object, out: torch.Tensor) -> None:
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return
        act = out.detach()
        channels_first = not isinstance(module, nn.Linear)

        def grad_hook(grad: torch.Tensor) -> None:
            prod = real(act * grad).double()
            if channels_first:  # (B, C, *spatial)
                per_channel = prod.flatten(2).sum(-1)
            else:  # (B, ..., C)
                per_channel = prod.reshape(prod.shape[0], -1, prod.shape[-1]).sum(1)
            saliency.append(0.5 * per_channel.square().mean(0).sum())

        out.register_hook(grad_hook)

    handles = [
        m.register_forward_hook(forward_hook) for m in model.modules() if isinstance(m, LAYER_TYPES)
    ]
    try:
        model.zero_grad(set_to_none=True)
        loss_of(model, inputs, targets).backward()
    finally:
        for h in handles:
            h.remove()
    if not saliency:
        raise ProxyError("no Linear/Conv layer output received a gradient")
    return float(sum(saliency))
