"""One trial's evaluation: the configured evaluators in order, with multi-fidelity screening.

A `TrialPipeline` runs in whatever process evaluates trials (a local worker, a Ray worker, or the
driver itself with ``workers: 0``). It always runs the analytic ``cost`` evaluator first (cheap,
and it gives every trial params, MACs, bytes and bit-operations), then each configured evaluator.
An evaluator with a promotion rule runs only when the candidate's screening metric reaches the
threshold the driver computed from earlier trials (`promotion_threshold`); otherwise the trial
ends ``pruned`` with the cheap metrics it has. The first evaluator that fails ends the trial
``failed`` with that evaluator's error; metrics gathered before it are kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mixnas.config import EvaluatorConfig, PromoteRule
from mixnas.records import FAILED, OK, PRUNED, RUNNING
from search_space.spec import ArchSpec
from search_space.status import TrialStatus


@dataclass(frozen=True)
class TrialOutcome:
    """What evaluating one candidate produced (JSON-ready through `to_dict`)."""

    status: TrialStatus
    metrics: Mapping[str, float] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stages"] = list(self.stages)
        return out

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> TrialOutcome:
        return TrialOutcome(
            status=TrialStatus(data["status"]),
            metrics=dict(data.get("metrics", {})),
            timings=dict(data.get("timings", {})),
            stages=tuple(data.get("stages", ())),
            error=data.get("error", ""),
        )


def with_cost(configs: Sequence[EvaluatorConfig]) -> tuple[EvaluatorConfig, ...]:
    """The evaluator list with ``cost`` first (added when the config does not name it)."""
    if any(c.name == "cost" for c in configs):
        return tuple(configs)
    return (EvaluatorConfig("cost"), *configs)


def create_evaluators(configs: Sequence[EvaluatorConfig]) -> list[Any]:
    """Instantiates the configured evaluators (raises on unknown names or options).

    A name is a registered evaluator (``proxy``, ``train``, ...) or ``package.module:Class``, a
    user's own `evaluators.Evaluator` subclass, imported in every process that evaluates trials
    (so it works with worker processes and Ray without registering anything).
    """
    import evaluators

    made = [
        evaluator_class(c.name)(**dict(c.options))
        if ":" in c.name
        else evaluators.create(c.name, **dict(c.options))
        for c in configs
    ]
    for evaluator, c in zip(made, configs, strict=True):
        # an evaluator whose metric names depend on the device (latency_ms@host or @cuda)
        # learns the entry's device here, so the names a config is checked against are the
        # names its trials report
        bind = getattr(evaluator, "bind_device", None)
        if bind is not None:
            bind(c.device)
    return made


def entry_device(evaluator: Any, device: str) -> str:
    """The torch device an entry runs on: ``auto`` means the evaluator's own ``auto_device``
    when it has one (the latency evaluator's ``host`` is the CPU), else a GPU when present."""
    from evaluators.devices import resolve_device

    auto = getattr(evaluator, "auto_device", None)
    return resolve_device(auto if device == "auto" and auto else device)


def evaluator_class(reference: str) -> type:
    """The class a ``package.module:Class`` reference names."""
    import importlib

    module_name, _, class_name = reference.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{module_name} has no class {class_name!r}")
    return cls


def produced_metrics(evaluator: Any) -> tuple[str, ...]:
    """The metric names an evaluator instance reports (instance attribute, else class)."""
    return tuple(getattr(evaluator, "metrics", ()))


class TrialPipeline:
    """Evaluates specs with a fixed list of evaluators (see the module docstring)."""

    def __init__(self, configs: Sequence[EvaluatorConfig], *, seed: int) -> None:
        self.configs = with_cost(configs)
        self.evaluators = create_evaluators(self.configs)
        self.seed = seed
        # resolved here, in the process that evaluates: what ``auto`` means depends on the GPUs
        # this process sees (a pinned local worker, a Ray trial's reservation)
        self.devices = [
            entry_device(e, c.device) for e, c in zip(self.evaluators, self.configs, strict=True)
        ]

    def run(
        self,
        spec: ArchSpec,
        thresholds: Mapping[int, float | None],
        on_stage: Callable[[TrialOutcome], None] | None = None,
    ) -> TrialOutcome:
        """Runs the evaluators on ``spec``; ``thresholds[i]`` is the screening threshold of
        evaluator ``i`` (None: promote unconditionally, e.g. during warm-up). ``on_stage`` gets
        the partial outcome before each evaluator starts (status ``running``, the evaluator's
        name last in ``stages``), so a trial killed for its time limit keeps what it had."""
        return self.run_many([spec], thresholds, on_stage)[0]

    def run_many(
        self,
        specs: Sequence[ArchSpec],
        thresholds: Mapping[int, float | None],
        on_stage: Callable[[TrialOutcome], None] | None = None,
    ) -> list[TrialOutcome]:
        """`run` for several specs at once: each evaluator gets the specs still running in one
        `evaluate_many` call (an evaluator may vectorise it); each spec's outcome is what `run`
        would give it alone. ``on_stage`` reports the first spec's progress (workers run one)."""
        from evaluators import EvalContext

        trials = [_Trial() for _ in specs]
        for index, (cfg, evaluator) in enumerate(zip(self.configs, self.evaluators, strict=True)):
            rule = cfg.promote
            for t in trials:
                threshold = thresholds.get(index)
                if (
                    t.status is None
                    and rule
                    and not _promoted(t.metrics.get(rule.metric), rule, threshold)
                ):
                    t.status = PRUNED
            running = [i for i, t in enumerate(trials) if t.status is None]
            if not running:
                break
            context = EvalContext(
                seed=self.seed, budget=dict(cfg.budget), data=cfg.data, device=self.devices[index]
            )
            if on_stage is not None and running[0] == 0:
                on_stage(trials[0].partial(cfg.name))
            start = time.perf_counter()
            results = _evaluate_many(evaluator, [specs[i] for i in running], context)
            seconds = (time.perf_counter() - start) / len(running)  # a batch's time, shared
            for i, result in zip(running, results, strict=True):
                t = trials[i]
                t.timings[cfg.name] = seconds
                t.stages.append(cfg.name)
                t.metrics.update({k: float(v) for k, v in result.metrics.items()})
                if result.status != OK:
                    # an evaluator's own pruning (a rung rule) ends the trial like screening does
                    t.status = PRUNED if result.status == PRUNED else FAILED
                    t.error = f"{cfg.name}: {result.error}" if result.error else ""
        return [t.outcome() for t in trials]


def _evaluate_many(evaluator: Any, specs: list[ArchSpec], context: Any) -> list[Any]:
    many = getattr(evaluator, "evaluate_many", None)
    if many is not None:
        return list(many(specs, context))
    return [evaluator.evaluate(spec, context) for spec in specs]


@dataclass(eq=False)
class _Trial:
    """One spec's outcome while `TrialPipeline.run_many` builds it."""

    status: TrialStatus | None = None  # None while evaluators remain
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    error: str = ""

    def partial(self, running: str) -> TrialOutcome:
        return TrialOutcome(
            RUNNING, dict(self.metrics), dict(self.timings), (*self.stages, running)
        )

    def outcome(self) -> TrialOutcome:
        status = OK if self.status is None else self.status
        return TrialOutcome(status, self.metrics, self.timings, tuple(self.stages), self.error)


def _promoted(value: float | None, rule: PromoteRule, threshold: float | None) -> bool:
    if threshold is None:
        return True
    if value is None or not math.isfinite(value):
        return False
    return value >= threshold if rule.direction == "maximize" else value <= threshold


def promotion_threshold(rule: PromoteRule, earlier: Sequence[Mapping[str, float]]) -> float | None:
    """The value a candidate's ``rule.metric`` must reach to be promoted, given the metrics of
    the trials finished before it was asked; None while fewer than ``rule.warmup`` have it."""
    values = np.array(
        [m[rule.metric] for m in earlier if math.isfinite(m.get(rule.metric, math.nan))]
    )
    if len(values) < max(rule.warmup, 1):
        return None
    if rule.direction == "maximize":
        return float(np.quantile(values, 1.0 - rule.top))
    return float(np.quantile(values, rule.top))


def failed(error: str, partial: TrialOutcome | None = None) -> TrialOutcome:
    """A failed outcome, keeping the metrics of the evaluators that finished before it failed;
    the error names the evaluator that was running."""
    if partial is None:
        return TrialOutcome(FAILED, {}, {}, (), error)
    running = partial.stages[-1] if partial.stages else ""
    where = f" during '{running}'" if running else ""
    return TrialOutcome(
        FAILED, partial.metrics, partial.timings, partial.stages[:-1], f"{error}{where}"
    )
