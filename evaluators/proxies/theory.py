"""TE-NAS's two theory-inspired proxies: the NTK condition number and the linear-region count.

Chen, Gong and Wang 2021, "Neural Architecture Search on ImageNet in Four GPU Hours: A
Theoretically Inspired Perspective" (TE-NAS, ICLR) ranks networks by the condition number of the
empirical neural tangent kernel at initialisation (trainability: lower is better) and by the number
of linear regions a ReLU network cuts its input space into (expressivity: higher is better).
Chen et al. 2022, "Auto-scaling Vision Transformers without Training" (As-ViT, ICLR) uses the same
two measures on ViTs, whose nonlinearities are GELUs, softmax and LayerNorm.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from evaluators.proxies.registry import ProxyError, activation_types, proxy, real
from search_space.spec import ArchSpec

# The smallest eigenvalue is floored at this fraction of the largest: a singular NTK (samples the
# network cannot tell apart) gets the worst finite score instead of an infinite condition number.
_EIG_FLOOR = 1e-12
# Cost caps: the NTK takes one backward pass per sample, the region count ``steps`` forward
# samples per segment; beyond these the ranking changes little and the CPU time a lot.
NTK_SAMPLES = 8
SEGMENTS = 4


@proxy("ntk_cond")
def ntk_cond(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """Minus the log condition number ``log(lambda_max / lambda_min)`` of the empirical NTK
    ``Theta = J J^T`` on the batch (TE-NAS, Eq. 3; As-ViT's kappa). Negated so that higher is
    better, like every registered proxy; the log keeps singular kernels finite (floor 1e-12).
    The kernel is taken on the first `NTK_SAMPLES` (8) samples of the batch.

    ``J`` holds, per sample, the gradient of the sum of its logits with respect to every trainable
    parameter (TE-NAS takes the parameters named ``weight``; here all of them, which adds norm
    scales and biases alike for every mixer), as in TE-NAS's reference: one forward pass of the
    batch in train mode, one backward pass per sample. Complex filters enter by their real and
    imaginary parts. Cost: one backward pass per sample.
    """
    model.train()
    inputs = inputs[:NTK_SAMPLES]
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ProxyError("ntk_cond: the model has no trainable parameters")
    logits = model(inputs)
    rows = []
    for i in range(logits.shape[0]):
        grads = torch.autograd.grad(
            logits[i].sum(), params, retain_graph=i + 1 < logits.shape[0], allow_unused=True
        )
        rows.append(torch.cat([real(g).reshape(-1) for g in grads if g is not None]).double())
    jac = torch.stack(rows)
    eig = torch.linalg.eigvalsh(jac @ jac.T)
    top = float(eig[-1])
    if not top > 0:
        raise ProxyError("ntk_cond: the NTK is zero (the logits do not depend on the parameters)")
    bottom = max(float(eig[0]), top * _EIG_FLOOR)
    return -math.log(top / bottom)


def _line_points(ends: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` evenly spaced points on the segment between consecutive pairs of ``ends``:
    ``(pairs * steps, ...)``, segment by segment."""
    a, b = ends[0 : 2 * (len(ends) // 2) : 2], ends[1 : 2 * (len(ends) // 2) : 2]
    t = torch.linspace(0.0, 1.0, steps, dtype=ends.dtype, device=ends.device)
    t = t.view(1, steps, *([1] * (ends.dim() - 1)))
    return (a.unsqueeze(1) + t * (b - a).unsqueeze(1)).flatten(0, 1)


def _patterns(model: nn.Module, run: Any) -> torch.Tensor | None:
    """Runs ``run()`` and returns, per sample, the signs of the input of every activation module,
    concatenated (None when no activation module ran)."""
    codes: list[torch.Tensor] = []

    def pre_hook(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            codes.append((real(args[0].detach()) > 0).flatten(1))

    handles = [
        m.register_forward_pre_hook(pre_hook)
        for m in model.modules()
        if isinstance(m, activation_types())
    ]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return torch.cat(codes, dim=1) if codes else None


@proxy("linear_regions")
def linear_regions(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    spec: ArchSpec,
    steps: int = 16,
) -> float:
    """Linear regions crossed per input segment (TE-NAS's expressivity; As-ViT's generalisation to
    GELU networks), as a log: ``log`` of the mean region count. Higher is better.

    TE-NAS counts the distinct ReLU on/off patterns of the network over a set of inputs. Over a
    small batch of images every sample has its own pattern (a network has thousands of units, and
    any two images differ on some), so that count saturates at the batch size and ranks nothing.
    Here the count is taken along straight lines instead (Hanin and Rolnick 2019, "Complexity of
    Linear Regions in Deep Networks"): on the segment between consecutive pairs of the batch's
    samples (the first `SEGMENTS` pairs, 4), the network is piecewise linear and its pieces end
    where some unit's pre-activation changes sign. With ``steps`` evenly spaced points per
    segment, the regions crossed are ``1 + sum over consecutive points of the number of units
    whose sign differs`` (a unit that flips twice between two points is missed, so this is a
    lower bound that tightens with ``steps``).

    The pattern is the sign of the input of every activation module: the ReLU pattern itself, and
    for GELU, SiLU, StarReLU and the other smooth activations the sign of the pre-activation, which
    is where their curvature concentrates. As-ViT applies TE-NAS's measures to GELU ViTs; this
    sign rule is mixnas's generalisation for them, not a formula from either paper. Softmax and
    LayerNorm are not counted. The model runs in eval mode (batch norm with its initial running
    statistics) so that each point's pattern does not depend on the other points. Token ids cannot
    be interpolated: for them the segments join the token embeddings (the stem's output).

    A network with no activation module at all (e.g. only LayerNorms and linear maps) has no
    pattern to count: it cannot be scored, and says so.
    """
    model.eval()
    inputs = inputs[: 2 * SEGMENTS]
    if len(inputs) < 2:
        raise ProxyError("linear_regions: needs a batch of at least 2 samples")
    if inputs.is_floating_point():
        points = _line_points(inputs, steps)
        codes = _patterns(model, lambda: model(points))
    else:
        stem = getattr(model, "stem", None)
        if not isinstance(stem, nn.Module):
            raise ProxyError("linear_regions: token ids and no `stem` module to interpolate at")
        with torch.no_grad():
            embedded = _line_points(stem(inputs), steps)
        ids = inputs[:1].expand(len(embedded), *inputs.shape[1:])
        handle = stem.register_forward_hook(lambda _m, _i, _o: embedded)
        try:
            codes = _patterns(model, lambda: model(ids))
        finally:
            handle.remove()
    if codes is None:
        raise ProxyError(
            "linear_regions: cannot score: the network has no ReLU-like activation module, so "
            "it has no activation pattern to count"
        )
    segments = codes.view(len(inputs) // 2, steps, -1)
    flips = (segments[:, 1:] != segments[:, :-1]).sum(dim=(1, 2)).double()
    return math.log(float((1.0 + flips).mean()))
