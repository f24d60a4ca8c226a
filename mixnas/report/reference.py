"""Hypervolume against a fixed reference point, in the objectives' own units.

A hypervolume is comparable between two runs only when both are measured from the same reference
point and on the same scale, so the report computes it in the metrics' units (no normalisation by
the run's own range) from a reference the user can set: ``mixnas report RUN --hv-ref
params=2e6,macs=1e8``. Without one, the reference is this run's worst eligible value of each
objective moved 10% of its range further out (``default_reference``); the report prints it as the
``--hv-ref`` text that reproduces it, so a second run's report can be measured from the same point.

Only trials that are better than the reference in every objective add volume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from search_space.errors import MixnasError

MARGIN = 0.1  # of each objective's range, beyond its worst eligible value


class ReportOptionError(MixnasError, ValueError):
    """A report option (``--hv-ref``) that cannot be used; the message says what is allowed."""


def parse_hv_reference(text: str, objectives: Sequence[Any]) -> list[float]:
    """``"params=2e6,macs=1e8"`` (every objective once, any order) as values in objective order."""
    names = [o.metric for o in objectives]
    allowed = ",".join(f"{n}=VALUE" for n in names)
    given: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise ReportOptionError(
                f"--hv-ref: {part!r} is not METRIC=VALUE for an objective of this run; "
                f"expected {allowed}"
            )
        if name in given:
            raise ReportOptionError(f"--hv-ref: {name} is given twice; expected {allowed}")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ReportOptionError(f"--hv-ref: {name}={value.strip()!r} is not a finite number")
        given[name] = number
    missing = [n for n in names if n not in given]
    if missing:
        raise ReportOptionError(f"--hv-ref: no value for {', '.join(missing)}; expected {allowed}")
    return [given[n] for n in names]


def format_reference(objectives: Sequence[Any], ref: Sequence[float]) -> str:
    """The ``--hv-ref`` text of a reference point."""
    return ",".join(f"{o.metric}={v:.6g}" for o, v in zip(objectives, ref, strict=True))


def default_reference(values: np.ndarray, directions: Sequence[str]) -> list[float] | None:
    """The worst of each column of ``values`` (eligible trials' metrics, metric units) moved
    ``MARGIN`` of the column's range outwards; None when there is no row."""
    if values.shape[0] == 0:
        return None
    ref = []
    for j, direction in enumerate(directions):
        column = values[:, j]
        lo, hi = float(column.min()), float(column.max())
        pad = (hi - lo) * MARGIN or abs(hi) * MARGIN or 1.0
        ref.append(lo - pad if direction == "maximize" else hi + pad)
    return ref


def to_loss_reference(ref: Sequence[float], directions: Sequence[str]) -> np.ndarray:
    return np.array(
        [-v if d == "maximize" else v for v, d in zip(ref, directions, strict=True)], dtype=float
    )
