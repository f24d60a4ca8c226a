"""KAT's GR-KAN channel mixer, "Kolmogorov-Arnold Transformer" (official ``KAN`` with
``KAT_Group`` activations), in plain torch."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from search_space.ops.channel_mixers import hidden_width


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


_TARGETS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "swish": F.silu,
    "identity": _identity,
}


def rational(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``P(x) / (1 + sum_j |b_j x^j|)`` with ``numerator`` (..., m + 1) = a_0..a_m and
    ``denominator`` (..., n) = b_1..b_n broadcast against ``x[..., None]``. The absolute values
    keep the denominator >= 1 (the "safe" Pade unit KAT uses), so there are no poles."""
    num = torch.zeros_like(x)
    for coeff in numerator.unbind(-1)[::-1]:  # Horner's rule
        num = num * x + coeff
    power, den = torch.ones_like(x), torch.ones_like(x)
    for coeff in denominator.unbind(-1):
        power = power * x
        den = den + (coeff * power).abs()
    return num / den


@functools.lru_cache(maxsize=16)
def rational_fit(target: str, num_order: int, den_order: int) -> tuple[tuple[float, ...], ...]:
    """Coefficients whose safe rational best fits ``target`` on [-3, 3] (KAT fits the same range).

    A linear least-squares solve of ``P(x) - f(x) Q(x) = f(x)`` (Q without absolute values) gives
    the start; L-BFGS on the squared error of the safe form refines it. Deterministic, computed
    once per process and order pair.
    """
    x = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    y = _TARGETS[target](x)
    columns = [x**i for i in range(num_order + 1)] + [-y * x ** (j + 1) for j in range(den_order)]
    start = torch.linalg.lstsq(torch.stack(columns, 1), y[:, None]).solution[:, 0]
    a = start[: num_order + 1].clone().requires_grad_(True)
    b = start[num_order + 1 :].clone().requires_grad_(True)
    with torch.enable_grad():
        opt = torch.optim.LBFGS([a, b], max_iter=150, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (rational(x, a, b) - y).square().mean()
            loss.backward()
            return loss

        opt.step(closure)
    return tuple(a.detach().tolist()), tuple(b.detach().tolist())


class GroupRational(nn.Module):
    """KAT's group-rational activation over the last axis: channels in ``groups`` contiguous
    groups; the numerator is shared, each group has its own denominator.

    Cost: params (m + 1) + G n; MACs 0 (elementwise, fvcore's convention).
    """

    def __init__(self, groups: int, num_order: int, den_order: int, init: str) -> None:
        super().__init__()
        if init == "identity":
            a = [0.0, 1.0] + [0.0] * (num_order - 1)
            b = [0.0] * den_order
        else:
            fitted_a, fitted_b = rational_fit(init, num_order, den_order)
            a, b = list(fitted_a), list(fitted_b)
        self.groups = groups
        self.numerator = nn.Parameter(torch.tensor(a, dtype=torch.float32))
        self.denominator = nn.Parameter(torch.tensor([b] * groups, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grouped = x.unflatten(-1, (self.groups, x.shape[-1] // self.groups))
        # (G, n) denominators broadcast over each group's channels: (..., G, C/G, n)
        y = rational(grouped, self.numerator, self.denominator[:, None, :])
        return y.flatten(-2)


class GroupRationalKan(nn.Module):
    """GR-KAN: ``fc2(R2(fc1(R1(x))))``; R1 starts as the identity, R2 as a fit of ``init``.

    Layout: tokens. Complexity O(T d h + T (d + h)(m + n)); h = int(ratio * d).
    Cost: params 2 d h (+ h + d bias) + 2 ((m + 1) + G n); MACs 2 T d h.
    """

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        ratio: float,
        groups: int,
        num_order: int,
        den_order: int,
        init: str,
        bias: bool,
    ) -> None:
        super().__init__()
        hidden = hidden_width(dim, ratio)
        self.act1 = GroupRational(groups, num_order, den_order, "identity")
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act2 = GroupRational(groups, num_order, den_order, init)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act2(self.fc1(self.act1(x))))
