"""Architecture logits: one categorical distribution per decision of a declared space.

The distribution is factorised: every dimension of the space (`DecisionSpace.dims`) has its own
logits, and a decision vector is drawn one dimension at a time. Conditional dimensions need no
special case: an inactive dimension's draw is ignored when the vector is decoded, which is exactly
marginalising it out, so the distribution over specs is the push-forward of this product.

Who calls what: the search loop draws a hard Gumbel-softmax sample per architecture step
(`ArchParams.gumbel`), decodes its indices into a spec, and multiplies the sampled paths' outputs
by the straight-through weights (`evaluators.supernet.differentiable.paths`); weight steps draw a
plain sample (`ArchParams.sample`); the result is the argmax (`ArchParams.argmax`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from search_space.declare.decisions import DecisionSpace
from search_space.spec import Op, Quant


@dataclass(frozen=True)
class GumbelSample:
    """One architecture draw: the chosen index per dimension and, per dimension, the weight its
    chosen path's output is multiplied by (value 1 when hard; its gradient reaches the logits)."""

    values: np.ndarray
    weights: list[torch.Tensor]


class ArchParams(nn.Module):
    """Logits per dimension of ``space``, all starting at zero (the uniform distribution)."""

    def __init__(self, space: DecisionSpace) -> None:
        super().__init__()
        self.names = [d.name for d in space.dims]
        self.sizes = [d.size for d in space.dims]
        self.logits = nn.ParameterList([nn.Parameter(torch.zeros(n)) for n in self.sizes])

    def probabilities(self) -> list[torch.Tensor]:
        """Softmax of each dimension's logits (differentiable)."""
        return [torch.softmax(logit, dim=0) for logit in self.logits]

    def gumbel(self, tau: float, generator: torch.Generator, *, hard: bool = True) -> GumbelSample:
        """A Gumbel-softmax draw at temperature ``tau`` (Jang et al., ICLR 2017; GDAS, Dong & Yang,
        CVPR 2019): ``y = softmax((logits + g) / tau)``, the path taken is ``argmax y``.

        With ``hard`` the weight is ``y_c - stop_grad(y_c) + 1``: 1 in the forward pass (the
        sampled subnet computes exactly what it computes alone) and ``dy_c/dlogits`` backwards.
        Otherwise it is ``y_c`` itself."""
        values, weights = [], []
        for logit in self.logits:
            uniform = torch.rand(logit.shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
            noise = -torch.log(-torch.log(uniform)).to(logit.device)
            y = torch.softmax((logit + noise) / tau, dim=0)
            chosen = int(y.detach().argmax())
            values.append(chosen)
            weights.append(y[chosen] - y[chosen].detach() + 1.0 if hard else y[chosen])
        return GumbelSample(np.array(values, dtype=np.int64), weights)

    @torch.no_grad()
    def sample(self, generator: torch.Generator) -> np.ndarray:
        """A plain draw from the distribution (weight steps train what the search will pick)."""
        out = []
        for p in self.probabilities():
            out.append(int(torch.multinomial(p.cpu(), 1, generator=generator)))
        return np.array(out, dtype=np.int64)

    @torch.no_grad()
    def argmax(self) -> np.ndarray:
        return np.array([int(logit.argmax()) for logit in self.logits], dtype=np.int64)

    @torch.no_grad()
    def log_prob(self, values: np.ndarray, active: list[bool]) -> float:
        """Log-probability of the spec ``values`` decodes to (its active decisions)."""
        total = 0.0
        for logit, v, on in zip(self.logits, values, active, strict=True):
            if on:
                total += float(torch.log_softmax(logit, dim=0)[int(v)])
        return total

    def table(self, space: DecisionSpace) -> dict[str, dict[str, float]]:
        """Probabilities per dimension, keyed by readable choice labels (for ``arch.json``)."""
        out: dict[str, dict[str, float]] = {}
        for dim, p in zip(space.dims, self.probabilities(), strict=True):
            probs = p.detach().cpu().tolist()
            labels = [choice_label(c) for c in dim.choices]
            out[dim.name] = {_unique(labels, i): round(q, 6) for i, q in enumerate(probs)}
        return out


def choice_label(choice: Any) -> str:
    """A short readable name for one choice of a dimension."""
    if isinstance(choice, Op):
        return choice.label()
    if isinstance(choice, Quant):
        return f"w{choice.weight_bits}a{choice.act_bits}{choice.granularity[4]}"
    if hasattr(choice, "kind") and hasattr(choice, "values"):  # a stage pattern
        values = list(choice.values)
        return f"{choice.kind}{values}" if values else str(choice.kind)
    if isinstance(choice, str):
        return choice
    if isinstance(choice, int | float | bool) or choice is None:
        return json.dumps(choice)
    return repr(choice)


def _unique(labels: list[str], i: int) -> str:
    # two choices can share a label (a pattern offered twice with other mixer lists)
    return labels[i] if labels.count(labels[i]) == 1 else f"{labels[i]}#{i}"
