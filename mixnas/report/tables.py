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
    """Every finished trial: ids, status, architecture summary, every metric, error."""
    import pandas as pd

    columns = ["trial_id", "spec_id", "origin", "status", "mixers", "depths", "widths", "bits"]
    return pd.DataFrame([_row(r) for r in run.records], columns=None if run.records else columns)


def front_table(run: RunData) -> Any:
    """The Pareto front: objectives first (in config order), then the architecture summary."""
    import pandas as pd

    objectives = [o.metric for o in run.objectives]
    rows = [_row(r) for r in run.front()]
    base = ["trial_id", "spec_id", *objectives, "mixers", "depths", "widths", "bits"]
    frame = pd.DataFrame(rows, columns=None if rows else base)
    rest = [c for c in frame.columns if c not in base]
    return frame[[c for c in base if c in frame.columns] + rest]
