"""Durable trial records: one SQLite database per run, in WAL mode, written by the driver only.

Why SQLite: a trial row is committed in one transaction the moment the trial finishes, so a run
killed at any instant (SIGKILL included) loses at most the trials still being evaluated; WAL mode
lets a reader (``mixnas report``, pandas, a notebook) read while the run writes. A row is keyed by
the strategy's candidate number, which a resumed strategy reproduces, so a resumed run can recognise
a trial it has already finished and never evaluates it twice.

``seq`` numbers finished trials in the order the driver committed them, which is the order it told
them to the strategy: the strategy's history is rebuilt from the records in that order on resume,
so the strategy checkpoint stays small. Trials that finish together (a batch of cheap
evaluations) are committed in one transaction, so a run of 100,000 quick trials pays one disk
sync per batch rather than one per trial.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from search_space.errors import RunFolderError
from search_space.status import BY_VALUE, FINISHED, TrialStatus

SCHEMA_VERSION = 2  # 2: the seq column (tell order)
DB_NAME = "trials.sqlite"
# the names run code has always imported from here, now the enum's members (FINISHED too)
RUNNING, OK, FAILED, PRUNED = (
    TrialStatus.RUNNING,
    TrialStatus.OK,
    TrialStatus.FAILED,
    TrialStatus.PRUNED,
)

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
    worker TEXT NOT NULL DEFAULT '',
    seq INTEGER
);
"""
_SEQ_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS trials_seq ON trials (seq)"
_COLUMNS = (
    "trial_id, spec_id, origin, status, spec, metrics, timings, stages, error, started, "
    "finished, worker"
)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as stored: ``metrics`` hold every evaluator's output (units in the names)."""

    trial_id: int
    spec_id: str
    origin: str
    status: TrialStatus
    spec: Mapping[str, Any]
    metrics: Mapping[str, float] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    error: str = ""
    started: float | None = None
    finished: float | None = None
    worker: str = ""
    seq: int | None = None  # commit (= tell) order of finished trials, from 0

    @property
    def done(self) -> bool:
        return self.status in FINISHED


def _clean(values: Mapping[str, float]) -> dict[str, float | None]:
    # JSON has no NaN; a missing value is stored as null and read back as NaN
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}


def _unclean(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: (math.nan if v is None else float(v)) for k, v in values.items()}


def record_event(record: TrialRecord) -> dict[str, Any]:
    """A finished trial as the event log (``events.jsonl``) writes it: every field of the
    record, so that `mixnas doctor --repair` can rebuild the records from the log alone."""
    return {
        "trial_id": record.trial_id,
        "seq": record.seq,
        "spec_id": record.spec_id,
        "origin": record.origin,
        "status": record.status,
        "spec": record.spec,
        "metrics": _clean(record.metrics),
        "timings": _clean(record.timings),
        "stages": list(record.stages),
        "error": record.error,
        "started": record.started,
        "finished": record.finished,
        "worker": record.worker,
    }


def record_from_event(event: Mapping[str, Any]) -> TrialRecord | None:
    """The record a trial event holds (`record_event`); None when it holds too little (a log
    written before the events carried specs, or a line that is not a finished trial)."""
    try:
        if event.get("status") not in FINISHED or not isinstance(event.get("spec"), dict):
            return None
        seq = event.get("seq")
        return TrialRecord(
            trial_id=int(event["trial_id"]),
            spec_id=str(event["spec_id"]),
            origin=str(event.get("origin", "")),
            status=BY_VALUE[event["status"]],
            spec=event["spec"],
            metrics=_unclean(event.get("metrics") or {}),
            timings=_unclean(event.get("timings") or {}),
            stages=tuple(event.get("stages") or ()),
            error=str(event.get("error", "")),
            started=event.get("started"),
            finished=event.get("finished"),
            worker=str(event.get("worker", "")),
            seq=None if seq is None else int(seq),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


class RunStore:
    """The trial records of one run folder (see the module docstring). ``file``: another
    database file in the folder (`mixnas doctor --repair` writes a new one beside the old)."""

    def __init__(self, run_dir: str | Path, *, file: str = DB_NAME) -> None:
        self.path = Path(run_dir) / file
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        # the callers checked the file; a last guard
        except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
            raise RunFolderError(
                f"{self.path}: is not a readable SQLite database ({err})"
            ) from None

    def _open(self) -> None:
        # isolation_level=None: explicit transactions; a write outside `transaction` commits at once
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._in_transaction = False
        self._next_seq = 0
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed trial survives a power cut, not only a killed process
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._migrate()
        self._conn.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._next_seq = int(
            self._conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM trials").fetchone()[0]
        )

    def _migrate(self) -> None:
        """Schema 1 had no ``seq``: its drivers told trials in trial order, so that is the order."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(trials)")}
        if "seq" not in columns:
            with self.transaction():
                self._conn.execute("ALTER TABLE trials ADD COLUMN seq INTEGER")
                finished = ", ".join("?" * len(FINISHED))
                self._conn.execute(
                    f"UPDATE trials SET seq = (SELECT COUNT(*) FROM trials AS t WHERE "
                    f"t.trial_id < trials.trial_id AND t.status IN ({finished})) "
                    f"WHERE status IN ({finished})",
                    FINISHED + FINISHED,
                )
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
                )
        self._conn.execute(_SEQ_INDEX)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Groups writes into one transaction: all of them are committed (one disk sync), or,
        if the block raises or the process dies, none. Nested uses join the outer one."""
        if self._in_transaction:
            yield
            return
        seq = self._next_seq
        self._conn.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            self._next_seq = seq
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._in_transaction = False

    def start(self, trial_id: int, spec_id: str, origin: str, spec: Mapping[str, Any]) -> None:
        """Marks a trial as running (replacing an unfinished row left by a killed run)."""
        existing = self._status(trial_id)
        if existing in FINISHED:
            raise ValueError(f"trial {trial_id} is already finished; it is never rewritten")
        self._conn.execute(
            "INSERT OR REPLACE INTO trials (trial_id, spec_id, origin, status, spec, started) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (trial_id, spec_id, origin, RUNNING, json.dumps(spec, sort_keys=True), time.time()),
        )

    def finish(self, record: TrialRecord) -> TrialRecord:
        """Writes a finished trial (in one transaction, or in the enclosing `transaction`);
        returns it as stored, with its finish time and ``seq``."""
        if record.status not in FINISHED:
            raise ValueError(f"status {record.status!r} is not a finished status {FINISHED}")
        if self._status(record.trial_id) in FINISHED:
            raise ValueError(f"trial {record.trial_id} is already finished; it is never rewritten")
        stored = replace(
            record,
            finished=record.finished if record.finished is not None else time.time(),
            seq=self._next_seq,
        )
        self._conn.execute(
            f"INSERT OR REPLACE INTO trials ({_COLUMNS}, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stored.trial_id,
                stored.spec_id,
                stored.origin,
                stored.status,
                json.dumps(stored.spec, sort_keys=True),
                json.dumps(_clean(stored.metrics), sort_keys=True),
                json.dumps(_clean(stored.timings), sort_keys=True),
                json.dumps(list(stored.stages)),
                stored.error,
                stored.started,
                stored.finished,
                stored.worker,
                stored.seq,
            ),
        )
        self._next_seq += 1
        return stored

    def finish_many(self, records: Iterable[TrialRecord]) -> list[TrialRecord]:
        """Writes finished trials in one transaction, in the given (= tell) order."""
        with self.transaction():
            return [self.finish(r) for r in records]

    def set_meta(self, key: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def _status(self, trial_id: int) -> str | None:
        row = self._conn.execute(
            "SELECT status FROM trials WHERE trial_id = ?", (trial_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    # -- reads -------------------------------------------------------------------------------------
    def get(self, trial_id: int) -> TrialRecord | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS}, seq FROM trials WHERE trial_id = ?", (trial_id,)
        ).fetchone()
        return None if row is None else _record(row)

    def spec(self, trial_id: int) -> dict[str, Any]:
        """One trial's spec as plain data (a strategy's lazily loaded history reads this)."""
        row = self._conn.execute(
            "SELECT spec FROM trials WHERE trial_id = ?", (trial_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no trial {trial_id} in {self.path}")
        return dict(json.loads(row[0]))

    def told(self, limit: int | None = None) -> Iterator[TrialSummary]:
        """The finished trials in tell order (``seq``), without their specs: what a strategy's
        history is rebuilt from. ``limit``: only the first ones (those a checkpoint had told)."""
        finished = ", ".join("?" * len(FINISHED))
        query = (
            f"SELECT trial_id, spec_id, origin, status, metrics FROM trials "
            f"WHERE status IN ({finished}) ORDER BY seq"
        )
        params: tuple[Any, ...] = FINISHED
        if limit is not None:
            query += " LIMIT ?"
            params = (*FINISHED, int(limit))
        for trial_id, spec_id, origin, status, metrics in self._conn.execute(query, params):
            yield TrialSummary(
                int(trial_id), spec_id, origin, BY_VALUE[status], _unclean(json.loads(metrics))
            )

    def unfinished(self) -> list[TrialRecord]:
        """Trials started but never finished (in flight when a run stopped), in trial order."""
        return [
            _record(row)
            for row in self._conn.execute(
                f"SELECT {_COLUMNS}, seq FROM trials WHERE status = ? ORDER BY trial_id",
                (RUNNING,),
            )
        ]

    def max_trial_id(self) -> int:
        """The largest trial number of any row (-1 for an empty store)."""
        return int(
            self._conn.execute("SELECT COALESCE(MAX(trial_id), -1) FROM trials").fetchone()[0]
        )

    def records(self, *, finished_only: bool = True) -> list[TrialRecord]:
        return list(self.iter_records(finished_only=finished_only))

    def iter_records(self, *, finished_only: bool = True) -> Iterator[TrialRecord]:
        query = f"SELECT {_COLUMNS}, seq FROM trials"
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


@dataclass(frozen=True)
class TrialSummary:
    """A finished trial without its spec (cheap to read by the hundred thousand)."""

    trial_id: int
    spec_id: str
    origin: str
    status: TrialStatus
    metrics: Mapping[str, float]


def _record(row: tuple[Any, ...]) -> TrialRecord:
    (trial_id, spec_id, origin, status, spec, metrics, timings, stages, error, started, finished,
     worker, seq) = row  # fmt: skip
    return TrialRecord(
        trial_id=int(trial_id),
        spec_id=spec_id,
        origin=origin,
        status=BY_VALUE[status],
        spec=json.loads(spec),
        metrics=_unclean(json.loads(metrics)),
        timings=_unclean(json.loads(timings)),
        stages=tuple(json.loads(stages)),
        error=error,
        started=started,
        finished=finished,
        worker=worker,
        seq=None if seq is None else int(seq),
    )


ARCHITECTURE_COLUMNS = ("mixers", "depths", "widths", "bits")  # as trials.csv has them


def load_trials(run_dir: str | Path, *, architecture: bool = True) -> Any:
    """The finished trials of a run as a pandas DataFrame: one row per trial, with ``trial_id``,
    ``spec_id``, ``origin``, ``status``, ``error``, ``started``, ``finished``, ``seconds``, the
    architecture summary ``trials.csv`` has (``mixers``, ``depths``, ``widths``, ``bits``: per
    stage, as `mixnas.report.data.describe_spec` writes them), ``front`` (on the Pareto front of
    the run's objectives and constraints: pandas' nullable boolean, NA when the folder has no
    ``config.json`` to say what the objectives are), one column per metric, and the spec's
    JSON in ``spec``.

    One query, read as columns: the stored spec text is already canonical JSON (sorted keys), so
    ``spec`` is the stored text, and the metrics are parsed in one call. The architecture
    columns parse every spec, one at a time (about 40 us a trial: 4 s for 100,000 trials);
    ``architecture=False`` leaves them out for a faster load. The database is only read (no
    schema change, no lock), so a notebook can load a run while its driver writes. A store
    that is missing, empty or corrupt in a run folder that had trials raises
    `search_space.errors.RunFolderError` naming the file (`mixnas.integrity`)."""
    import numpy as np
    import pandas as pd

    from mixnas.integrity import check_store
    from mixnas.report.data import describe_spec

    path = Path(run_dir) / DB_NAME
    check_store(Path(run_dir))  # a store missing, empty or corrupt in a run that had trials
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no {DB_NAME}; is this a mixnas run folder?")
    conn = sqlite3.connect(path, timeout=30.0)
    try:
        rows = conn.execute(
            "SELECT trial_id, spec_id, origin, status, error, started, finished, spec, metrics "
            f"FROM trials WHERE status IN ({', '.join('?' * len(FINISHED))}) ORDER BY trial_id",
            FINISHED,
        ).fetchall()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{path}: cannot be read ({err})") from None
    finally:
        conn.close()
    base = ["trial_id", "spec_id", "origin", "status", "error", "started", "finished", "seconds"]
    described = [*(ARCHITECTURE_COLUMNS if architecture else ()), "front"]
    if not rows:
        frame = pd.DataFrame([], columns=[*base, *described, "spec"])
        return frame.astype({"front": "boolean"})
    ids, spec_ids, origins, statuses, errors, started, finished, specs, metrics = zip(
        *rows, strict=True
    )
    parsed = json.loads("[" + ",".join(metrics) + "]")  # one parse for every row's metrics
    start = np.array(started, dtype=float)  # None reads as NaN
    end = np.array(finished, dtype=float)
    columns: dict[str, Any] = {
        "trial_id": np.array(ids, dtype=np.int64),
        "spec_id": list(spec_ids),
        "origin": list(origins),
        "status": list(statuses),
        "error": list(errors),
        "started": start,
        "finished": end,
        "seconds": np.nan_to_num(end, nan=0.0) - np.nan_to_num(start, nan=0.0),
    }
    if architecture:
        summaries = [_summary(text, describe_spec) for text in specs]
        for key in ARCHITECTURE_COLUMNS:
            columns[key] = [d[key] for d in summaries]
    values = {
        # a missing key and a stored null (NaN) both read as NaN
        name: np.array([d.get(name) for d in parsed], dtype=float)
        for name in sorted({k for d in parsed for k in d} - {*base, *described, "spec"})
    }
    columns["front"] = pd.array(_front_flags(Path(run_dir), statuses, values), dtype="boolean")
    columns.update(values)
    columns["spec"] = list(specs)
    return pd.DataFrame(columns)


def _summary(text: str, describe: Any) -> dict[str, Any]:
    # one spec at a time: joining 100,000 specs into one text to parse costs memory and time
    try:
        spec = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        spec = None  # a damaged record (see mixnas doctor): summarised as such
    return describe(spec if isinstance(spec, dict) else {"stages": None})


def _front_flags(
    run_dir: Path, statuses: Iterable[str], metrics: Mapping[str, Any]
) -> list[bool | None]:
    """Which trials are on the run's Pareto front (`mixnas.front`), by the objectives and
    constraints of its ``config.json``; None for every trial when there is no config."""
    import numpy as np

    from mixnas.config import parse_config
    from mixnas.front import eligible_mask, nondominated
    from mixnas.manifest import CONFIG, read_json
    from strategies.multiobjective import to_losses

    status = np.array(list(statuses), dtype=object)
    if not (run_dir / CONFIG).is_file():
        return [None] * len(status)
    config = parse_config(read_json(run_dir / CONFIG), source=str(run_dir / CONFIG))
    objectives = config.objectives
    nan = np.full(len(status), np.nan)
    values = np.column_stack([metrics.get(o.metric, nan) for o in objectives])
    losses = to_losses(values.reshape(len(status), -1), [o.direction for o in objectives])
    rows = np.flatnonzero(eligible_mask(status, metrics, objectives, config.constraints))
    flags = np.zeros(len(status), dtype=bool)
    flags[rows[nondominated(losses[rows])]] = True
    return [bool(f) for f in flags]
