"""The architecture decisions of a run's trials, and how much each one matters to an objective.

A trial's decisions are read from its spec, whatever space produced it: per stage, the token
mixer (the distinct mixers of its blocks, joined by ``+``), the depth (blocks), the width and the
bit widths (``w8a8``, ``fp32``; distinct policies joined by ``+``). A stage a spec does not have
reads as mixer ``-``, depth 0, width 0, bits ``-``, so every trial has every decision. Decisions
that take one value in every trial looked at are left out (they decide nothing here).

A space with many mixers gives a stage dozens of mixer combinations (147 in a 100,000-trial
``hybrid`` run); `collapse` keeps the most frequent categories of a decision and merges the rest
into ``(other)``, for readable axes and a bounded importance.

Importance is Optuna's fANOVA (`optuna.importance.FanovaImportanceEvaluator`) on an in-memory
study built from the finished trials' decisions (categorical and integer distributions) and one
objective's values (log10 of values spanning more than two decades). Its cost grows with the
trials, the categories and above all the depth of its trees (Optuna's default forest, 64 trees of
depth 64, took 110 s for one objective of 500 trials of that run), so it runs on at most
``IMPORTANCE_TRIALS`` trials (a seeded sample), ``IMPORTANCE_CATEGORIES`` categories per decision,
and ``N_TREES`` trees of depth at most ``MAX_DEPTH``: under 2 s per objective there.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Trials, at most, behind the importances (a seeded sample of a larger run).
IMPORTANCE_TRIALS = 500
#: Categories, at most, of a decision in the importances (the most frequent; the rest: "(other)").
IMPORTANCE_CATEGORIES = 10
OTHER = "(other)"
#: Fewer trials than this reporting an objective: no importance for it (it would be noise).
MIN_IMPORTANCE_TRIALS = 20
N_TREES, MAX_DEPTH = 16, 6
KINDS = ("mixer", "depth", "width", "bits")
_SEED = 0


@dataclass
class Decisions:
    """Decision columns for some trials: ``names`` in axis order, ``values[name]`` one value per
    trial (str for categorical decisions, int otherwise), ``categories[name]`` the sorted names
    of a categorical decision, and ``fixed`` the decisions left out (one value throughout)."""

    names: list[str]
    values: dict[str, list[Any]]
    categories: dict[str, list[str]]
    fixed: dict[str, Any]

    def column(self, name: str) -> np.ndarray:
        """Numbers for a chart axis: category indices, or the integers."""
        if name in self.categories:
            index = {c: i for i, c in enumerate(self.categories[name])}
            return np.array([index[v] for v in self.values[name]], dtype=float)
        return np.array(self.values[name], dtype=float)


def stage_decisions(spec: dict[str, Any]) -> dict[str, Any]:
    """``{"s1 mixer": ..., "s1 depth": ..., "s1 width": ..., "s1 bits": ..., "s2 mixer": ...}``
    of one spec (a damaged spec gives no decisions)."""
    out: dict[str, Any] = {}
    try:
        for k, st in enumerate(spec.get("stages", []), start=1):
            blocks = st.get("blocks", [])
            mixers: dict[str, None] = {}
            bits: dict[str, None] = {}
            for b in blocks:
                mixers[str(b["token_mixer"]["name"])] = None
                q = b.get("quant")
                policy = f"w{q.get('weight_bits', 32)}a{q.get('act_bits', 32)}" if q else "fp32"
                bits[policy] = None
            out[f"s{k} mixer"] = "+".join(mixers) or "-"
            out[f"s{k} depth"] = len(blocks)
            out[f"s{k} width"] = int(st.get("width", 0))
            out[f"s{k} bits"] = "+".join(bits) or "-"
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError):  # damaged
        return {}
    return out


def decisions_of(specs: Sequence[dict[str, Any]]) -> Decisions:
    """The decision columns of these specs (in their order)."""
    rows = [stage_decisions(s) for s in specs]
    stages = max((int(k.split()[0][1:]) for r in rows for k in r), default=0)
    names = [f"s{k} {kind}" for kind in KINDS for k in range(1, stages + 1)]
    values: dict[str, list[Any]] = {}
    categories: dict[str, list[str]] = {}
    fixed: dict[str, Any] = {}
    kept = []
    for name in names:
        categorical = name.endswith(("mixer", "bits"))
        column = [r.get(name, "-" if categorical else 0) for r in rows]
        distinct = set(column)
        if len(distinct) <= 1:
            if distinct:
                fixed[name] = column[0]
            continue
        kept.append(name)
        values[name] = column
        if categorical:
            categories[name] = sorted(str(v) for v in distinct)
    return Decisions(kept, values, categories, fixed)


def collapse(decisions: Decisions, keep: int) -> tuple[Decisions, dict[str, int]]:
    """The decisions with at most ``keep`` categories each: the most frequent (ties: by name)
    and ``(other)`` for the rest. Also returns how many categories each decision merged."""
    values = dict(decisions.values)
    categories = dict(decisions.categories)
    merged: dict[str, int] = {}
    for name, names in decisions.categories.items():
        if len(names) <= keep:
            continue
        counts = Counter(values[name])
        top = set(sorted(names, key=lambda c: (-counts[c], c))[: keep - 1])
        values[name] = [v if v in top else OTHER for v in values[name]]
        categories[name] = [*sorted(top), OTHER]
        merged[name] = len(names) - len(top)
    return Decisions(decisions.names, values, categories, decisions.fixed), merged


def sample(rows: np.ndarray, cap: int, seed: int = _SEED) -> np.ndarray:
    """At most ``cap`` of ``rows``: a seeded random sample, kept in order."""
    if rows.size <= cap:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=cap, replace=False))


@dataclass
class Importance:
    """Importances (summing to 1) of the decisions for one objective, most important first;
    ``trials``: how many trials they rest on; ``log``: whether log10 of the values was used;
    ``note``: why there are none, when there are none."""

    objective: str
    values: list[tuple[str, float]]
    trials: int
    log: bool = False
    note: str = ""


def importances(decisions: Decisions, objective: str, targets: np.ndarray) -> Importance:
    """fANOVA importances of ``decisions`` (one row per trial) for ``targets`` (same rows; NaN
    rows are left out)."""
    keep = np.flatnonzero(np.isfinite(targets))
    if keep.size < MIN_IMPORTANCE_TRIALS:
        return Importance(objective, [], int(keep.size), note="too few trials report it")
    y = targets[keep]
    positive = y[y > 0]
    use_log = bool(positive.size == y.size and float(y.max() / y.min()) > 100)
    if use_log:
        y = np.log10(y)
    if float(np.ptp(y)) == 0.0:
        return Importance(objective, [], int(keep.size), note="it is the same in every trial")
    decisions, _ = collapse(decisions, IMPORTANCE_CATEGORIES)
    sub = {n: [decisions.values[n][i] for i in keep] for n in decisions.names}
    names = [n for n in decisions.names if len(set(sub[n])) > 1]
    if not names:
        return Importance(objective, [], int(keep.size), note="no decision varies")
    try:
        values = _fanova(names, sub, decisions.categories, y)
    except Exception as err:  # an importance is optional: the report goes on without it
        log.warning("importance of the decisions for %s failed: %s", objective, err)
        return Importance(objective, [], int(keep.size), note=f"fANOVA failed ({err})")
    return Importance(objective, values, int(keep.size), log=use_log)


def _fanova(
    names: list[str],
    values: dict[str, list[Any]],
    categories: dict[str, list[str]],
    y: np.ndarray,
) -> list[tuple[str, float]]:
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        IntDistribution,
    )
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions: dict[str, BaseDistribution] = {}
    for n in names:
        if n in categories:
            distributions[n] = CategoricalDistribution(categories[n])
        else:
            distributions[n] = IntDistribution(min(values[n]), max(values[n]))
    trials = [
        optuna.trial.create_trial(
            params={n: values[n][i] for n in names},
            distributions=distributions,
            value=float(y[i]),
        )
        for i in range(y.size)
    ]
    study = optuna.create_study(direction="minimize")  # the direction does not matter to fANOVA
    study.add_trials(trials)
    evaluator = FanovaImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=_SEED)
    with warnings.catch_warnings():  # fANOVA is marked experimental in some Optuna versions
        warnings.simplefilter("ignore")
        result = get_param_importances(study, evaluator=evaluator, normalize=True)
    out = [(n, float(v)) for n, v in result.items()]
    return sorted(out, key=lambda item: (-item[1], names.index(item[0])))


def describe_importance(imp: Importance) -> str:
    """A plain sentence on what an importance rests on."""
    if not imp.values:
        return f"No importance for {imp.objective}: {imp.note}."
    scale = " (log10 of its values)" if imp.log else ""
    top = ", ".join(f"{n} {v:.0%}" for n, v in imp.values[:3] if math.isfinite(v))
    return f"{imp.objective}{scale} over {imp.trials:,} trials; largest: {top}."
