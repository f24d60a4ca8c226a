"""Activation- and Jacobian-pattern proxies: jacov, nwot (NASWOT) and epe_nas.

These look at how differently the network treats the samples of one batch. The Jacobian is taken
with respect to the input images or feature vectors (token ids: the token embeddings, see
`registry.input_jacobian`); everything is real-valued, so FFT paths and the scan op only enter
through the real tensors they produce.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from evaluators.proxies.registry import (
    ProxyError,
    activation_types,
    corrcoef,
    input_jacobian,
    proxy,
)
from search_space.spec import ArchSpec

_K = 1e-5  # the eigenvalue / correlation offset of the original implementations


@proxy("jacov")
def jacov(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """Jacobian covariance, v1 of Mellor et al. 2021 ("Neural Architecture Search without
    Training", arXiv v1): ``-sum_i log(v_i + k) + 1 / (v_i + k)`` over the eigenvalues ``v`` of the
    correlation matrix of the per-sample input Jacobians, k = 1e-5. Higher is better (less
    correlated Jacobians). Raises for networks whose output does not depend on the input."""
    model.train()
    corr = corrcoef(input_jacobian(model, inputs), "jacov")
    v = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(v + _K) + 1.0 / (v + _K)).sum())


@proxy("epe_nas", tasks=("classification",))  # groups the samples by class label
def epe_nas(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec
) -> float:
    """EPE-NAS (Lopes et al. 2021, "EPE-NAS: Efficient Performance Estimation Without Training
    for Neural Architecture Search"): per class ``s_c = sum log(|corr(J_c)| + k)`` over the
    Jacobian correlations of the samples of that class, score ``sum_{c, c'} |s_c - s_c'|`` (the
    per-class scores are divided by their size above 100 classes, as in the reference code). A
    class with one sample in the batch has correlation 1, as ``np.corrcoef`` gives."""
    model.train()
    jac = input_jacobian(model, inputs)
    num_classes = spec.input.num_classes
    scores: list[float] = []
    for c in torch.unique(targets).tolist():
        rows = jac[targets == c]
        corr = corrcoef(rows, "epe_nas") if rows.shape[0] > 1 else torch.ones(1, 1).double()
        s = float(torch.log(corr.abs() + _K).sum())
        scores.append(s / corr.shape[0] if num_classes > 100 else s)
    return float(sum(abs(a - b) for a in scores for b in scores))


@proxy("nwot")
def nwot(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, spec: ArchSpec) -> float:
    """NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training", ICML):
    ``log det K`` with ``K_ij`` the number of units on which samples i and j have the same binary
    code.

    The code of a unit is whether the input of an activation module is positive: exactly the ReLU
    on/off pattern of the paper, and for GELU, SiLU, StarReLU and the other non-ReLU activations
    (the hidden layers of the channel mixers, the ReLU-conv-BN of NAS-Bench-201 cells) the sign of
    the pre-activation. A network without any activation module is coded by the signs of its
    pre-head features. ``K + I`` is used (one extra unit on which each sample agrees only with
    itself) so the log-determinant stays finite when two samples share their codes.
    """
    model.train()
    batch = inputs.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64, device=inputs.device)
    coded = [0]

    def add(codes: torch.Tensor) -> None:
        c = (codes.detach().flatten(1) > 0).double()
        kernel.add_(c @ c.T + (1.0 - c) @ (1.0 - c).T)
        coded[0] += c.shape[1]

    def pre_hook(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor) and args[0].shape[:1] == (batch,):
            add(args[0])

    handles = [
        m.register_forward_pre_hook(pre_hook)
        for m in model.modules()
        if isinstance(m, activation_types())
    ]
    features: list[torch.Tensor] = []
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):  # pre-head features, the fallback code
        handles.append(head.register_forward_pre_hook(lambda _m, a: features.append(a[0])))
    try:
        with torch.no_grad():
            logits = model(inputs)
    finally:
        for h in handles:
            h.remove()
    if coded[0] == 0:  # no activation module ran: a LayerNorm-only / identity network
        add(features[0] if features else logits)
    eye = torch.eye(batch, dtype=torch.float64, device=inputs.device)
    sign, logdet = torch.linalg.slogdet(kernel + eye)
    if float(sign) <= 0 or not math.isfinite(float(logdet)):
        raise ProxyError("the NASWOT kernel is not positive definite")
    return float(logdet)
