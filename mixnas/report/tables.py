"""The run's trials and its Pareto front as pandas tables (written as CSV next to the report)."""

from __future__ import annotations

from typing import Any

from mixnas.report.data import RunData, describe_spec


def _row(record: Any) -> dict[str, Any]:
    return {
        "trial_id": record.trial_id,
        "spec_id": record.spec_id,
        "origin": record.origin,
        "status": record.status,
        **describe_spec(dict(record.spec)),
        **dict(record.metrics),
        "error": record.error,
        "seconds": (record.finished or 0.0) - (record.started or 0.0),
    }


def trials_table(run: RunData) -> Any:
    """Every finished trial: ids, status, architecture summary, every metric (sorted by name),
    error, seconds. Built from columns; the specs are read one at a time for the summary."""
    import pandas as pd

    t = run.trials
    described = list(run.descriptions())
    columns: dict[str, Any] = {
        "trial_id": t.trial_id,
        "spec_id": t.spec_id,
        "origin": t.origin,
        "status": t.status,
    }
    for key in ("mixers", "depths", "widths", "bits"):
        columns[key] = [d[key] for d in described]
    columns.update((name, t.metrics[name]) for name in sorted(t.metrics))
    columns["error"] = t.error
    columns["seconds"] = t.seconds()
    return pd.DataFrame(columns)


def front_table(run: RunData) -> Any:
    """The Pareto front: objectives first (in config order), then the architecture summary."""
    import pandas as pd

    objectives = [o.metric for o in run.objectives]
    rows = [_row(r) for r in run.front()]
    base = ["trial_id", "spec_id", *objectives, "mixers", "depths", "widths", "bits"]
    frame = pd.DataFrame(rows, columns=None if rows else base)
    rest = [c for c in frame.columns if c not in base]
    return frame[[c for c in base if c in frame.columns] + rest]
