"""Cost and latency models and accuracy surrogates behind one fit/predict interface.

`names()` lists the registered predictors; `create(name, *, seed=0, **options)` builds one. Each
has ``fit(specs, targets)``, ``predict(specs) -> numpy array`` (the targets' unit),
``predict_std(specs)`` (its uncertainty) and declares ``predicts`` and ``device``; see
`predictors.base`. `predictors.resolve.LatencyResolver` turns ``latency_ms@<device>`` constraint
and objective names into functions of a spec, for sampling and search.

Registered: ``macs_linear`` and ``ridge`` (baselines), ``gbt`` and ``mlp`` (learned),
``lut`` (op-level lookup table), ``roofline`` (device models), ``transfer`` (few-shot, HELP),
``gp`` and ``rf`` (accuracy surrogates).
"""

from __future__ import annotations

import importlib
from typing import Any

from predictors.base import PREDICTORS, Predictor, register

# modules whose import registers predictors; imported on first use (they pull in scikit-learn)
_BUILTIN_MODULES = (
    "predictors.learned",
    "predictors.lut",
    "predictors.roofline",
    "predictors.transfer",
    "predictors.surrogates",
)


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def names() -> list[str]:
    """The registered predictor names, sorted."""
    _load_builtins()
    return PREDICTORS.names()


def create(name: str, *, seed: int = 0, **options: Any) -> Predictor:
    """A new predictor ``name``; ``options`` are its constructor's keyword arguments."""
    _load_builtins()
    return PREDICTORS.get(name)(seed=seed, **options)


__all__ = ["PREDICTORS", "Predictor", "create", "names", "register"]
