"""Pure ask/tell search logic over specs and numbers: no torch, no evaluators, no file I/O.

`create(name, space, objectives, seed=..., constraints=..., **options)` builds a registered
strategy; `names()` lists them. See `strategies.base` for the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search_space.declare.decisions import DecisionSpace
from search_space.declare.schema import Constraint
from search_space.registry import Registry
from search_space.status import TrialStatus
from strategies.base import (
    FAILED,
    MAXIMIZE,
    MINIMIZE,
    OK,
    PRUNED,
    Candidate,
    Direction,
    Objective,
    Observation,
    Strategy,
)

# built-ins first, then the plug-ins of the group, on the first lookup
STRATEGIES: Registry[type[Strategy]] = Registry(
    "strategy", group="mixnas.strategies", builtins=lambda: _load_builtins()
)


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: registers a strategy under its ``name``."""
    STRATEGIES.register(cls.name, cls)
    return cls


def names() -> list[str]:
    _load_builtins()
    return STRATEGIES.names()


def _objectives(objectives: Sequence[Objective | tuple[str, str] | str]) -> list[Objective]:
    out = []
    for o in objectives:
        if isinstance(o, Objective):
            out.append(o)
        elif isinstance(o, tuple):
            name, direction = o
            out.append(Objective(name, Direction(direction)))
        else:
            out.append(Objective(o))
    return out


def create(
    name: str,
    space: DecisionSpace,
    objectives: Sequence[Objective | tuple[str, str] | str],
    *,
    seed: int,
    constraints: Sequence[Constraint] | None = None,
    **options: Any,
) -> Strategy:
    """A new strategy ``name`` over ``space``; unknown names list the registered ones."""
    _load_builtins()
    cls = STRATEGIES.get(name)
    return cls(space, _objectives(objectives), seed=seed, constraints=constraints, **options)


def _load_builtins() -> None:
    # importing the modules registers their strategies; done lazily so that importing the
    # package stays cheap and optional dependencies (optuna) load only when used
    import importlib

    for module in (
        "random_search",
        "evolution",
        "nsga2",
        "local_search",
        "surrogate",
        "optuna_adapter",
    ):
        try:
            importlib.import_module(f"strategies.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"strategies.{module}":
                raise


__all__ = [
    "FAILED",
    "MAXIMIZE",
    "MINIMIZE",
    "OK",
    "PRUNED",
    "STRATEGIES",
    "Candidate",
    "Direction",
    "Objective",
    "Observation",
    "Strategy",
    "TrialStatus",
    "create",
    "names",
    "register",
]
