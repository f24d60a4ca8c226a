"""Gradient-saliency proxies: snip, grasp, grad_norm, plain and fisher.

All of them take one cross-entropy loss on the batch with the model in train mode (batch norm uses
batch statistics, as at the start of training) and sum a per-weight saliency. Weights are the
tensors of `registry.weights` (Linear/Conv weights plus the weight tensors of other mixers), all
real (complex filters are stored as real pairs), so FFT, scan and attention paths contribute
without producing complex scores. GraSP's Hessian-vector product is exact (double backward), with
the once-differentiable ops (SDPA's fused CPU kernels, the SSM scan) routed through equivalent
plain ops for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from evaluators.proxies.registry import LAYER_TYPES, ProxyError, loss_of, proxy, real, weights
from search_space.spec import ArchSpec

logger = logging.getLogger(__name__)


def _grads(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[list[nn.Parameter], list[torch.Tensor]]:
    model.train()
    ws = list(weights(model))
    if not ws:
        raise ProxyError("the model has no weight tensors")
    grads = torch.autograd.grad(loss_of(model, inputs, targets), ws, allow_unused=True)
    return ws, [torch.zeros_like(w) if g is None else g for w, g in zip(ws, grads, strict=True)]


@contextmanager
def _twice_differentiable() -> Iterator[None]:
    """Routes the ops without a double backward through equivalent ones that have it.

    SDPA's fused CPU kernels and the scan of the selective SSM (a custom op and an
    `autograd.Function` with hand-written, in-place backwards) are differentiable once only; the
    SDPA math backend and `scan_reference` (a plain loop) compute the same values with ordinary
    autograd ops. Swapping the scan means patching the SSM module's names for the duration, so
    this must not run concurrently with other threads building or running SSM models.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from search_space.nn import scan
    from search_space.nn.mixers import ssm

    # the SSM's private names: if they change, the scan keeps its once-differentiable path and
    # grasp falls back to the finite difference for SSM models rather than failing everywhere
    swaps: dict[str, object] = {"linear_scan": scan.scan_reference}
    if hasattr(ssm, "selective_scan_reference"):

        class _PlainScan:
            apply = staticmethod(ssm.selective_scan_reference)

        swaps["_SelectiveScanFn"] = _PlainScan
    saved = {name: getattr(ssm, name) for name in swaps if hasattr(ssm, name)}
    for name in saved:
        setattr(ssm, name, swaps[name])
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        for name, value in saved.items():
            setattr(ssm, name, value)


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


def _hvp_exact(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    ws: list[nn.Parameter],
    gs: list[torch.Tensor],
) -> list[torch.Tensor]:
    """``H g`` by double backward: the gradient of ``g . grad(w)`` with ``g`` held constant."""
    with _twice_differentiable():
        loss = loss_of(model, inputs, targets)
        grads = torch.autograd.grad(loss, ws, create_graph=True, allow_unused=True)
        z = torch.zeros((), device=inputs.device)
        for g, gf in zip(gs, grads, strict=True):
            if gf is not None and gf.requires_grad:
                z = z + (real(g) * real(gf)).sum()
        if not z.requires_grad:  # the gradient is constant in w: H = 0
            return [torch.zeros_like(w) for w in ws]
        hg = torch.autograd.grad(z, ws, allow_unused=True)
    return [torch.zeros_like(w) if h is None else h for w, h in zip(ws, hg, strict=True)]


def _hvp_finite_difference(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    ws: list[nn.Parameter],
    gs: list[torch.Tensor],
) -> list[torch.Tensor]:
    """``H g`` as ``(grad(w + e g) - grad(w - e g)) / 2e`` with ``e = 1e-3 |w| / |g|``.

    Only a fallback for ops with no double backward at all: across ReLU/max-pool kinks the
    difference also counts the gradient jumps of the units that switch, which autograd's Hessian
    (and GraSP's) leaves out, so on ReLU networks it measures something else.
    """
    g_norm = torch.stack([real(g).double().square().sum() for g in gs]).sum().sqrt()
    w_norm = torch.stack([real(w).detach().double().square().sum() for w in ws]).sum().sqrt()
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
    return [(gp - gm) / (2 * step) for gp, gm in zip(plus, minus, strict=True)]


@proxy("grasp")
def grasp(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """GraSP gradient-signal preservation ``sum -w * (H g)`` (Wang et al. 2020, "Picking Winning
    Tickets Before Training by Preserving Gradient Flow"), temperature 1, in the sign and sum of
    Abdelfattah et al. 2021 and NASLib (higher is better).

    ``H g`` is exact, by double backward, as in the paper: SDPA runs on its math backend and the
    SSM scan on its plain-autograd reference for this (see `_twice_differentiable`). Only a model
    with some other once-differentiable op falls back to a central finite difference (logged).
    An earlier version used the finite difference for every model; on NAS-Bench-201's ReLU cells
    it ranked cells unlike NASLib (Spearman -0.15), because it also counts ReLU switching.
    """
    ws, gs = _grads(model, inputs, targets)
    if float(sum(real(g).double().square().sum() for g in gs)) == 0.0:
        raise ProxyError("the loss gradient is zero for every weight")
    try:
        hgs = _hvp_exact(model, inputs, targets, ws, gs)
    except (RuntimeError, NotImplementedError) as err:
        logger.debug("grasp: no double backward (%s); finite difference instead", err)
        hgs = _hvp_finite_difference(model, inputs, targets, ws, gs)
    score = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for w, hg in zip(ws, hgs, strict=True):
        score -= (real(w).detach().double() * real(hg).double()).sum()
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
