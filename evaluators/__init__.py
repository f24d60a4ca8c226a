"""Things that run a model: cost counting, timing, proxies, short training, supernets.

`create(name, **options)` builds a registered evaluator; `names()` lists them. See
`evaluators.base` for the protocol.
"""

from __future__ import annotations

import importlib
from typing import Any

from evaluators.base import (
    EVALUATORS,
    FAILED,
    OK,
    PRUNED,
    EvalContext,
    EvalResult,
    Evaluator,
    register,
    safe_evaluate,
)
from search_space.status import TrialStatus

# modules whose import registers more evaluators; loaded lazily (they import torch)
_BUILTIN_MODULES = (
    "evaluators.proxy_evaluator",
    "evaluators.training",
    "evaluators.ptq",
    "evaluators.latency",
    "evaluators.predicted_latency",
    "evaluators.mpc_cost",
    "evaluators.supernet.evaluator",
)


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def names() -> list[str]:
    _load_builtins()
    return EVALUATORS.names()


def create(name: str, **options: Any) -> Evaluator:
    _load_builtins()
    return EVALUATORS.get(name)(**options)


__all__ = [
    "EVALUATORS",
    "FAILED",
    "OK",
    "PRUNED",
    "EvalContext",
    "EvalResult",
    "Evaluator",
    "TrialStatus",
    "create",
    "names",
    "register",
    "safe_evaluate",
]
