"""Families across budgets: parse a budget ladder, price specs, score them, run a rule.

Who calls what: `mixnas scale` and `bench/scaling.py` call `load_base` (zoo name, spec JSON or
``RUN_DIR:TRIAL_ID``), `parse_budget` (``macs=1e8,2e8``), then `make_family`, which picks the
cost function (analytic MACs/params, or a latency predictor's quantile for ``latency_ms@DEVICE``)
and the rule (`search_space.scaling`), and returns the members. `describe` adds the figures the
report shows (all analytic costs, predicted latency, proxy scores).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from search_space import spec_cost, validate_spec
from search_space.errors import SpaceError
from search_space.scaling import (
    CostFn,
    Member,
    ScalingRule,
    ScoreFn,
    depth_rule,
    grow_ladder,
    scale_ladder,
    search_coefficients,
    width_rule,
)
from search_space.spec import ArchSpec

RULES = ("compound", "proxy", "width", "depth")
ANALYTIC = ("macs", "params")
LATENCY_PREFIX = "latency_ms@"
# As-ViT scores growth with expressivity (linear regions) and trainability (NTK condition
# number); both proxies are logs here, so their sum is the log of a ratio-like figure of merit.
DEFAULT_PROXIES = ("linear_regions", "ntk_cond")
# latency budgets are checked on this quantile of the predicted latency (prediction + z std),
# so a member meets its budget within the predictor's stated error
LATENCY_QUANTILE = 0.9


@dataclass(frozen=True)
class Budget:
    """A ladder of bounds on one metric: ``macs``, ``params`` or ``latency_ms@<device>``."""

    metric: str
    values: tuple[float, ...]


def parse_budget(text: str) -> Budget:
    """``METRIC=V1,V2,...`` with METRIC ``macs``, ``params`` or ``latency_ms@DEVICE``."""
    metric, sep, rest = text.partition("=")
    metric = metric.strip()
    if not sep or not rest.strip():
        raise SpaceError("--budget", "must read METRIC=V1,V2,... (e.g. macs=1e8,2e8)", value=text)
    if metric not in ANALYTIC and not (
        metric.startswith(LATENCY_PREFIX) and len(metric) > len(LATENCY_PREFIX)
    ):
        raise SpaceError(
            "--budget", "metric must be macs, params or latency_ms@DEVICE", value=metric
        )
    values = []
    for part in rest.split(","):
        try:
            v = float(part)
        except ValueError:
            raise SpaceError("--budget", "values must be numbers", value=part) from None
        if not math.isfinite(v) or v <= 0:
            raise SpaceError("--budget", "values must be finite numbers > 0", value=part)
        values.append(v)
    return Budget(metric, tuple(values))


def load_base(target: str) -> ArchSpec:
    """A zoo model's name, a spec JSON (or exported record), or ``RUN_DIR:TRIAL_ID``."""
    run_dir, sep, trial = target.rpartition(":")
    if sep and run_dir and Path(run_dir).is_dir():
        return _trial_spec(run_dir, trial)
    if Path(target).exists() or target.endswith(".json"):
        from mixnas.commands.build import read_spec

        return read_spec(target)  # type: ignore[no-any-return]
    from search_space import zoo

    if target not in zoo.names():
        raise SpaceError(
            "BASE",
            "not a zoo model, a spec file or RUN_DIR:TRIAL_ID; zoo: " + ", ".join(zoo.names()),
            value=target,
        )
    return zoo.get(target)


def _trial_spec(run_dir: str, trial: str) -> ArchSpec:
    import json

    from mixnas.records import load_trials

    try:
        tid = int(trial)
    except ValueError:
        raise SpaceError("BASE", "TRIAL_ID must be an integer", value=trial) from None
    try:
        trials = load_trials(run_dir, architecture=False)  # the spec column is all it reads
    except FileNotFoundError as exc:
        raise SpaceError("BASE", str(exc), value=run_dir) from None
    rows = trials[trials["trial_id"] == tid]
    if rows.empty:
        known = ", ".join(str(t) for t in trials["trial_id"].tolist()[:20])
        raise SpaceError("BASE", f"no trial {tid} in {run_dir}; trials: {known}", value=trial)
    spec = ArchSpec.from_json(json.dumps(json.loads(rows.iloc[0]["spec"])), source=run_dir)
    return validate_spec(spec, source=run_dir)


def cost_function(metric: str) -> CostFn:
    """``spec -> value`` of the budget's metric (analytic, or the latency predictor's quantile)."""
    if metric in ANALYTIC:
        return lambda spec: float(getattr(spec_cost(spec), metric))
    return _resolver().metric(metric, quantile=LATENCY_QUANTILE)


@cache
def _resolver() -> Any:
    """One resolver per process: host lookup tables are profiled (and calibrated) once."""
    from predictors.resolve import LatencyResolver

    return LatencyResolver(quantile=LATENCY_QUANTILE)


def proxy_score(
    names: Sequence[str] = DEFAULT_PROXIES,
    *,
    seed: int = 0,
    batch_size: int = 32,
    on_score: Callable[[], None] | None = None,
) -> ScoreFn:
    """``spec -> sum of the named proxies`` (NaN when one fails), cached per spec id;
    ``on_score`` is called after each spec scored (a CLI's progress)."""
    from evaluators.proxies import PROXIES, compute

    for n in names:
        PROXIES.get(n)  # unknown names raise here, listing the known ones, before any work
    cache: dict[str, float] = {}

    def score(spec: ArchSpec) -> float:
        if spec.id not in cache:
            values = compute(spec, list(names), seed=seed, batch_size=batch_size)
            cache[spec.id] = float(sum(values.values()))
            if on_score is not None:
                on_score()
        return cache[spec.id]

    return score


def make_rule(name: str, base: ArchSpec, score: Callable[[], ScoreFn] | None = None) -> Any:
    """The `ScalingRule` of ``name`` ("compound" searches its coefficients when ``score`` is
    given, else uses EfficientNet's)."""
    if name == "compound":
        return search_coefficients(base, score()) if score is not None else ScalingRule()
    if name == "width":
        return width_rule()
    if name == "depth":
        return depth_rule()
    raise SpaceError("--rule", f"must be one of {', '.join(RULES)}", value=name)


def make_family(
    base: ArchSpec,
    budget: Budget,
    rule: str = "compound",
    *,
    proxies: Sequence[str] = DEFAULT_PROXIES,
    search_coefs: bool = False,
    seed: int = 0,
    on_score: Callable[[], None] | None = None,
) -> list[Member]:
    """One member per budget value, made by ``rule`` (see module doc); ``on_score`` is called
    after each candidate the proxies score."""
    if rule not in RULES:
        raise SpaceError("--rule", f"must be one of {', '.join(RULES)}", value=rule)
    cost = cost_function(budget.metric)
    if rule == "proxy":
        score = proxy_score(proxies, seed=seed, on_score=on_score)
        return grow_ladder(base, cost, score, budget.values)
    scorer = (lambda: proxy_score(proxies, seed=seed, on_score=on_score)) if search_coefs else None
    return scale_ladder(make_rule(rule, base, scorer), base, cost, budget.values)


def describe(
    member: Member,
    metric: str,
    *,
    latency_device: str | None = None,
    proxies: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """The JSON object of one member: budget, spec, measured costs, dims, optional extras."""
    costs = spec_cost(member.spec).to_dict()
    out: dict[str, Any] = {
        "budget": {"metric": metric, "value": member.budget},
        "id": member.spec.id,
        "spec": member.spec.to_dict(),
        "cost": {metric: member.cost, **costs},
        "meets_budget": member.cost <= member.budget,
        "dims": member.dims.to_dict(),
        "rule_note": member.note,
    }
    if metric.startswith(LATENCY_PREFIX):
        # the budget is checked on the predictor's 90% quantile; show its plain prediction too
        out["cost"][metric + ":predicted"] = _resolver().metric(metric)(member.spec)
        out["cost_quantile"] = LATENCY_QUANTILE
    if latency_device:
        name = LATENCY_PREFIX + latency_device
        out["predicted"] = {name: _resolver().metric(name)(member.spec)}
    if proxies:
        from evaluators.proxies import compute

        out["proxies"] = compute(member.spec, list(proxies), seed=seed, batch_size=32)
    return out
