"""Evaluators and configs for the run tests: fast, deterministic, and faulty on purpose.

They are named in configs as ``tests.run_helpers:Class``, so worker processes (and Ray workers)
import them the way they would import a user's own evaluator.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from evaluators import OK, EvalContext, EvalResult, Evaluator
from search_space import spec_cost
from search_space.spec import ArchSpec


def pseudo_score(spec: ArchSpec) -> float:
    """A deterministic number in [0, 100) from the spec's id (a stand-in for accuracy)."""
    return int(hashlib.sha256(spec.id.encode()).hexdigest()[:8], 16) / 2**32 * 100


class SlowScore(Evaluator):
    """``score`` after sleeping ``delay`` seconds: deterministic, and slow enough to be killed."""

    name = "slow_score"
    metrics = ("score",)

    def __init__(self, delay: float = 0.1) -> None:
        self.delay = delay

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        time.sleep(self.delay)
        return EvalResult(OK, {"score": pseudo_score(spec)})


class CheapScore(SlowScore):
    """`SlowScore` marked cheap: a run of it evaluates in the driver, in batches."""

    name = "cheap_score"
    cheap = True


class LongOrShort(Evaluator):
    """``score`` after a long or a short sleep, chosen by the spec: trials of unequal length, so
    a batch-synchronous scheduler would leave a worker idle."""

    name = "long_or_short"
    metrics = ("score",)

    def __init__(self, long: float = 1.0, short: float = 0.05) -> None:
        self.long, self.short = long, short

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        score = pseudo_score(spec)
        time.sleep(self.long if int(score) % 2 else self.short)
        return EvalResult(OK, {"score": score})


class VisibleGpu(Evaluator):
    """``gpu``: the ``CUDA_VISIBLE_DEVICES`` its process was pinned to (-1 when unset)."""

    name = "visible_gpu"
    metrics = ("gpu",)

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        import os

        return EvalResult(OK, {"gpu": float(os.environ.get("CUDA_VISIBLE_DEVICES", "-1"))})


class Faulty(Evaluator):
    """Misbehaves by spec: raises, returns NaN, or hangs, chosen by ``pseudo_score`` buckets."""

    name = "faulty"
    metrics = ("score",)

    def __init__(self, hang: float = 60.0) -> None:
        self.hang = hang

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        score = pseudo_score(spec)
        bucket = int(score) % 4
        if bucket == 0:
            raise RuntimeError("this architecture breaks the evaluator")
        if bucket == 1:
            return EvalResult(OK, {"score": math.nan})
        if bucket == 2:
            time.sleep(self.hang)
        return EvalResult(OK, {"score": score})


def small_config(run_name: str, runs_dir: str, **changes: Any) -> dict[str, Any]:
    """A config over a small space with cheap evaluators (tests override pieces)."""
    config: dict[str, Any] = {
        "name": run_name,
        "seed": 3,
        "space": {"from": "hybrid", "constraints": {"params": {"max": 2.0e6}}},
        "objectives": [
            {"metric": "score", "direction": "maximize"},
            {"metric": "params", "direction": "minimize"},
        ],
        "evaluators": [{"name": "tests.run_helpers:SlowScore", "options": {"delay": 0.05}}],
        "strategy": {"name": "nsga2", "options": {"population_size": 6}},
        "budget": {"trials": 12},
        "backend": {"name": "local", "workers": 1},
        "trial_timeout": 30,
        "runs_dir": runs_dir,
        "export": {"pick": "front", "dir": "export"},
    }
    config.update(changes)
    return config


def cost_of(spec: dict[str, Any]) -> dict[str, int]:
    return spec_cost(ArchSpec.from_dict(spec)).to_dict()
