"""The evaluator protocol: run something on a spec and return a result with units.

Who calls what, when: a run driver (or a benchmark) calls `evaluator.evaluate(spec, context)` for
each candidate a strategy proposes and passes the result's metrics to the strategy's `tell`. An
evaluator never raises for a bad architecture: `safe_evaluate` turns an exception or a non-finite
metric into a result with status ``failed`` and the error text, so one broken candidate cannot
stop a run.

Metric names carry their units: ``macs``, ``params``, ``top1`` (percent), ``loss``,
``latency_ms@<device>``, ``proxy:<name>``.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from search_space.option_types import Opt
from search_space.registry import Registry
from search_space.spec import ArchSpec
from search_space.status import TrialStatus, finished_status

# the module-level names evaluators have always imported, now the enum members
OK, FAILED, PRUNED = TrialStatus.OK, TrialStatus.FAILED, TrialStatus.PRUNED


@dataclass(frozen=True)
class EvalContext:
    """What an evaluation may use besides the spec.

    Attributes:
        seed: seeds every random choice of the evaluation (weights, data order).
        budget: evaluator-specific budget, e.g. ``{"steps": 200}`` or ``{"seconds": 30}``.
        data: a dataset name or object the evaluator understands (None: its default).
        device: torch device string for evaluators that run models.
        options: further evaluator-specific settings.
    """

    seed: int = 0
    budget: Mapping[str, float] = field(default_factory=dict)
    data: Any = None
    device: str = "cpu"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalResult:
    """The outcome of one evaluation.

    Attributes:
        status: ``ok``, ``failed`` or ``pruned`` (stopped early by a multi-fidelity schedule).
        metrics: metric name (with unit) to value.
        timings: phase name to seconds, e.g. ``{"build": 0.1, "train": 12.3}``.
        error: the error text of a failed evaluation.
        rungs: per-rung metrics of a multi-fidelity evaluation, in order.
    """

    status: TrialStatus
    metrics: Mapping[str, float] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    error: str = ""
    rungs: tuple[Mapping[str, float], ...] = ()

    def __post_init__(self) -> None:
        # a plain "ok" (an evaluator written before the enum, a plug-in) becomes the member
        object.__setattr__(self, "status", finished_status(self.status, "EvalResult.status"))

    @property
    def ok(self) -> bool:
        return self.status == OK


class Evaluator:
    """Base class: subclasses implement `_evaluate` and name the metrics they produce.

    ``cheap`` marks an evaluator that is fast and safe to run in the driver's own process
    (analytic costs, predicted latency, inherited accuracy from a loaded supernet): a run whose
    evaluators are all cheap evaluates candidates many at a time in the driver instead of paying
    a process dispatch per trial. Such an evaluator may override `evaluate_many` to vectorise.
    """

    name: ClassVar[str] = ""
    # the metrics it reports: the class's default, which an instance whose options decide them
    # (the proxies it runs, the device it names) refines in its constructor
    metrics: tuple[str, ...] = ()
    cheap: ClassVar[bool] = False
    # the constructor's keyword options with their types and ranges, checked when a run config
    # is read (`search_space.option_types`); None: not declared, the constructor checks alone
    option_types: ClassVar[Mapping[str, Opt] | None] = None
    # the `EvalContext.budget` entries it reads, checked the same way; {}: it reads none (a
    # config's ``budget`` for it is refused), None: not declared
    budget_types: ClassVar[Mapping[str, Opt] | None] = None

    def evaluate(self, spec: ArchSpec, context: EvalContext | None = None) -> EvalResult:
        """Evaluates ``spec``; never raises for a bad architecture (see `safe_evaluate`)."""
        return safe_evaluate(self, spec, context or EvalContext())

    def evaluate_many(
        self, specs: Sequence[ArchSpec], context: EvalContext | None = None
    ) -> list[EvalResult]:
        """Evaluates several specs; each result is what `evaluate` gives that spec alone."""
        return [self.evaluate(spec, context) for spec in specs]

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        raise NotImplementedError

    def check_heads(self, heads: Sequence[str]) -> None:
        """Raises a one-line `ValueError` when this evaluator cannot judge specs ending in one of
        ``heads`` (the head ops a search space declares), e.g. a training task that does not fit
        the heads' output. `mixnas search` calls it before the first trial; the default accepts
        every head."""


def safe_evaluate(evaluator: Evaluator, spec: ArchSpec, context: EvalContext) -> EvalResult:
    """Runs an evaluator, recording exceptions and non-finite metrics as failed results."""
    start = time.perf_counter()
    try:
        result = evaluator._evaluate(spec, context)
    except Exception as exc:  # a failing candidate is a result, not a crash of the run
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return EvalResult(FAILED, timings={"total": time.perf_counter() - start}, error=text)
    bad = sorted(k for k, v in result.metrics.items() if not math.isfinite(float(v)))
    timings = {"total": time.perf_counter() - start, **result.timings}
    if result.status == OK and bad:
        return EvalResult(
            FAILED, result.metrics, timings, f"non-finite metric(s): {', '.join(bad)}", result.rungs
        )
    return EvalResult(result.status, result.metrics, timings, result.error, result.rungs)


def _builtins() -> None:
    from evaluators import _load_builtins

    _load_builtins()


# built-ins first, then the plug-ins of the group, on the first lookup
EVALUATORS: Registry[type[Evaluator]] = Registry(
    "evaluator", group="mixnas.evaluators", builtins=_builtins
)


def register(cls: type[Evaluator]) -> type[Evaluator]:
    """Class decorator: registers an evaluator under its ``name``."""
    EVALUATORS.register(cls.name, cls)
    return cls


MAX_BATCH = 1 << 16  # samples per batch an evaluator option may ask for
MAX_THREADS = 1024  # torch threads an evaluator option may ask for


@register
class CostEvaluator(Evaluator):
    """Analytic costs (params, MACs, activation memory, bytes, bit-operations) and, with
    ``options={"count": True}``, the MACs counted on the built model."""

    name = "cost"
    metrics = ("params", "macs", "activation_bytes", "bytes", "bitops")
    option_types: ClassVar[Mapping[str, Opt] | None] = {}
    budget_types: ClassVar[Mapping[str, Opt] | None] = {}
    cheap = True  # analytic: well under a millisecond a spec

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        from search_space import spec_cost

        metrics: dict[str, float] = {k: float(v) for k, v in spec_cost(spec).to_dict().items()}
        if context.options.get("count"):
            from evaluators.counting import count_macs
            from search_space import build_model, example_input

            model = build_model(spec, seed=context.seed)
            metrics["counted_macs"] = float(count_macs(model, example_input(spec, 1)))
        return EvalResult(OK, metrics)
