"""Durable trial records: one SQLite database per run, in WAL mode, written by the driver only.

Why SQLite: a trial row is committed in one transaction the moment the trial finishes, so a run
killed at any instant (SIGKILL included) loses at most the trials still being evaluated; WAL mode
lets a reader (``mixnas report``, pandas, a notebook) read while the run writes. A row is keyed by
the strategy's candidate number, which a resumed strategy reproduces, so a resumed run can recognise
a trial it has already finished and never evaluates it twice.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
DB_NAME = "trials.sqlite"
RUNNING, OK, FAILED, PRUNED = "running", "ok", "failed", "pruned"
FINISHED = (OK, FAILED, PRUNED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    trial_id INTEGER PRIMARY KEY,
    spec_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    timings TEXT NOT NULL DEFAULT '{}',
    stages TEXT NOT NULL DEFAULT '[]',
    error TEXT NOT NULL DEFAULT '',
    started REAL,
    finished REAL,
    worker TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class TrialRecord:
    """One trial as stored: ``metrics`` hold every evaluator's output (units in the names)."""

    trial_id: int
    spec_id: str
    origin: str
    status: str
    spec: Mapping[str, Any]
    metrics: Mapping[str, float] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    error: str = ""
    started: float | None = None
    finished: float | None = None
    worker: str = ""

    @property
    def done(self) -> bool:
        return self.status in FINISHED


def _clean(values: Mapping[str, float]) -> dict[str, float | None]:
    # JSON has no NaN; a missing value is stored as null and read back as NaN
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}


def _unclean(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: (math.nan if v is None else float(v)) for k, v in values.items()}


class RunStore:
    """The trial records of one run folder (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: explicit transactions, each write commits at once
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed trial survives a power cut, not only a killed process
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._conn.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------------
    def start(self, trial_id: int, spec_id: str, origin: str, spec: Mapping[str, Any]) -> None:
        """Marks a trial as running (replacing an unfinished row left by a killed run)."""
        existing = self.get(trial_id)
        if existing is not None and existing.done:
            raise ValueError(f"trial {trial_id} is already finished; it is never rewritten")
        self._conn.execute(
            "INSERT OR REPLACE INTO trials (trial_id, spec_id, origin, status, spec, started) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (trial_id, spec_id, origin, RUNNING, json.dumps(spec, sort_keys=True), time.time()),
        )

    def finish(self, record: TrialRecord) -> None:
        """Writes a finished trial in one transaction."""
        if record.status not in FINISHED:
            raise ValueError(f"status {record.status!r} is not a finished status {FINISHED}")
        existing = self.get(record.trial_id)
        if existing is not None and existing.done:
            raise ValueError(f"trial {record.trial_id} is already finished; it is never rewritten")
        self._conn.execute(
            "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.trial_id,
                record.spec_id,
                record.origin,
                record.status,
                json.dumps(record.spec, sort_keys=True),
                json.dumps(_clean(record.metrics), sort_keys=True),
                json.dumps(_clean(record.timings), sort_keys=True),
                json.dumps(list(record.stages)),
                record.error,
                record.started,
                record.finished if record.finished is not None else time.time(),
                record.worker,
            ),
        )

    def set_meta(self, key: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- reads -------------------------------------------------------------------------------------
    def get(self, trial_id: int) -> TrialRecord | None:
        row = self._conn.execute("SELECT * FROM trials WHERE trial_id = ?", (trial_id,)).fetchone()
        return None if row is None else _record(row)

    def records(self, *, finished_only: bool = True) -> list[TrialRecord]:
        return list(self.iter_records(finished_only=finished_only))

    def iter_records(self, *, finished_only: bool = True) -> Iterator[TrialRecord]:
        query = "SELECT * FROM trials"
        if finished_only:
            query += f" WHERE status IN ({', '.join('?' * len(FINISHED))})"
        query += " ORDER BY trial_id"
        params = FINISHED if finished_only else ()
        for row in self._conn.execute(query, params):
            yield _record(row)

    def count_finished(self) -> int:
        query = f"SELECT COUNT(*) FROM trials WHERE status IN ({', '.join('?' * len(FINISHED))})"
        return int(self._conn.execute(query, FINISHED).fetchone()[0])

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}


def _record(row: tuple[Any, ...]) -> TrialRecord:
    (trial_id, spec_id, origin, status, spec, metrics, timings, stages, error, started, finished,
     worker) = row  # fmt: skip
    return TrialRecord(
        trial_id=int(trial_id),
        spec_id=spec_id,
        origin=origin,
        status=status,
        spec=json.loads(spec),
        metrics=_unclean(json.loads(metrics)),
        timings=_unclean(json.loads(timings)),
        stages=tuple(json.loads(stages)),
        error=error,
        started=started,
        finished=finished,
        worker=worker,
    )


def load_trials(run_dir: str | Path) -> Any:
    """The finished trials of a run as a pandas DataFrame: one row per trial, with ``trial_id``,
    ``spec_id``, ``origin``, ``status``, ``error``, ``started``, ``finished``, ``seconds``, one
    column per metric and the spec's JSON in ``spec``."""
    import pandas as pd

    path = Path(run_dir) / DB_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {DB_NAME}; is this a mixnas run folder?")
    with RunStore(run_dir) as store:
        rows = []
        for r in store.iter_records():
            row: dict[str, Any] = {
                "trial_id": r.trial_id,
                "spec_id": r.spec_id,
                "origin": r.origin,
                "status": r.status,
                "error": r.error,
                "started": r.started,
                "finished": r.finished,
                "seconds": (r.finished or 0.0) - (r.started or 0.0),
                "spec": json.dumps(r.spec, sort_keys=True),
            }
            row.update(r.metrics)
            rows.append(row)
    base = ["trial_id", "spec_id", "origin", "status", "error", "started", "finished", "seconds"]
    frame = pd.DataFrame(rows, columns=None if rows else [*base, "spec"])
    metric_cols = sorted(c for c in frame.columns if c not in (*base, "spec"))
    return frame[[*base, *metric_cols, "spec"]]
