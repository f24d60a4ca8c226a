"""The ``mpc_cost`` evaluator: the cost of private inference of a spec under two-party MPC.

Metrics ``mpc_ms`` (online time on the configured link), ``mpc_mb`` (online communication, both
parties), ``mpc_rounds`` and ``mpc_nonlinear_share`` (the fraction of the bytes that softmax,
GeLU, norms and comparisons cost rather than matrix products), from the analytic model of
`predictors.mpc` (protocol, approximations and sources in its docstring). A spec with an op the
model does not price fails with a line naming it. Cheap: no model is built.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

from evaluators.base import OK, EvalContext, EvalResult, Evaluator, register
from search_space.option_types import Opt
from search_space.spec import ArchSpec


@register
class MPCCostEvaluator(Evaluator):
    """Prices a spec's private inference (see the module docstring).

    Args:
        bandwidth_mbps: the link between the two parties, Mbit/s (1000: a LAN).
        rtt_ms: its round-trip time, ms (0.2).
    """

    name = "mpc_cost"
    metrics = ("mpc_ms", "mpc_mb", "mpc_rounds", "mpc_nonlinear_share")
    cheap = True
    budget_types: ClassVar[Mapping[str, Opt] | None] = {}
    option_types: ClassVar[Mapping[str, Opt] | None] = {
        "bandwidth_mbps": Opt("float", min=1e-3, max=1e9),
        "rtt_ms": Opt("float", min=0.0, max=1e6),
    }

    def __init__(self, *, bandwidth_mbps: float = 1000.0, rtt_ms: float = 0.2) -> None:
        from predictors.mpc import Network

        self.network = Network(bandwidth_mbps=bandwidth_mbps, rtt_ms=rtt_ms)

    @staticmethod
    def example_spec() -> ArchSpec:
        """A ViT the model prices (the evaluator contract suite evaluates it)."""
        from search_space import ArchSpec as Spec
        from search_space.zoo import get

        data = get("deit_t").to_dict()
        data["input"]["resolution"] = [32, 32]
        return Spec.from_dict(data)

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        from predictors.mpc import mpc_metrics

        start = time.perf_counter()
        metrics = dict(mpc_metrics(spec, self.network))
        return EvalResult(OK, metrics, {"mpc_cost": time.perf_counter() - start})
