"""Differentiable (Gumbel-softmax) latency-aware one-shot search over a declared space.

Architecture logits per decision of the space are trained jointly with the supernet's shared
weights; the cost penalty is the exact expected cost of the factorised architecture distribution
(sum of per-op lookup-table entries or analytic costs). See `search` and docs/supernet.md
("Differentiable search").
"""

from evaluators.supernet.differentiable.arch_params import ArchParams
from evaluators.supernet.differentiable.config import (
    DifferentiableConfig,
    DifferentiableError,
    PenaltyConfig,
)
from evaluators.supernet.differentiable.expected_cost import (
    AnalyticCost,
    ExpectedCost,
    TableLatency,
)
from evaluators.supernet.differentiable.search import (
    ARCH,
    CHECKPOINT,
    DifferentiableResult,
    cost_model,
    search,
)

__all__ = [
    "ARCH",
    "CHECKPOINT",
    "AnalyticCost",
    "ArchParams",
    "DifferentiableConfig",
    "DifferentiableError",
    "DifferentiableResult",
    "ExpectedCost",
    "PenaltyConfig",
    "TableLatency",
    "cost_model",
    "search",
]
