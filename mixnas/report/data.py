"""A finished (or running) run, read back from its folder for reports, ``mixnas runs`` and export.

A run may hold 100,000 trials, so `RunData` reads the records as columns: one query for every
finished trial's ids, status, error, times and metrics (one float array per metric), and none of
the specs, which are most of the bytes. The front, the best trial and the counts are computed on
those columns; `TrialRecord`s (specs included) are built only for the trials a caller asks for
(`front`, `best`, `by_id`, `records_of`), and `descriptions` reads the specs one at a time to
summarise them for ``trials.csv``. `records` still gives every trial as a record, at full cost.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mixnas.config import SearchConfig, parse_config
from mixnas.front import eligible_mask, nondominated
from mixnas.manifest import CONFIG, MANIFEST, read_json
from mixnas.records import DB_NAME, FINISHED, RUNNING, TrialRecord
from search_space.errors import MixnasError, RunFolderError
from strategies.multiobjective import to_losses

_FINISHED_SQL = f"status IN ({', '.join('?' * len(FINISHED))})"
_ID_CHUNK = 500  # trial ids per "IN (...)" query


class NotARunError(MixnasError, ValueError):
    """The folder is not a mixnas run folder."""


@dataclass
class TrialColumns:
    """The finished trials of a run as columns, in trial order, without their specs."""

    trial_id: np.ndarray  # int64
    spec_id: list[str]
    origin: list[str]
    status: np.ndarray  # str (object)
    error: list[str]
    started: np.ndarray  # float, NaN when unknown
    finished: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # float, NaN when missing

    def __len__(self) -> int:
        return int(self.trial_id.shape[0])

    def metric(self, name: str) -> np.ndarray:
        """One metric per trial (all NaN when no trial reports it)."""
        values = self.metrics.get(name)
        return values if values is not None else np.full(len(self), math.nan)

    def seconds(self) -> np.ndarray:
        return np.nan_to_num(self.finished, nan=0.0) - np.nan_to_num(self.started, nan=0.0)

    @staticmethod
    def read(conn: sqlite3.Connection) -> TrialColumns:
        rows = conn.execute(
            "SELECT trial_id, spec_id, origin, status, error, started, finished, metrics "
            f"FROM trials WHERE {_FINISHED_SQL} ORDER BY trial_id",
            FINISHED,
        ).fetchall()
        ids, spec_ids, origins, statuses, errors, started, finished, texts = (
            zip(*rows, strict=True) if rows else ((),) * 8
        )
        parsed = json.loads("[" + ",".join(texts) + "]")  # one parse for every row's metrics
        names = sorted({k for d in parsed for k in d})
        return TrialColumns(
            trial_id=np.array(ids, dtype=np.int64),
            spec_id=list(spec_ids),
            origin=list(origins),
            status=np.array(statuses, dtype=object),
            error=list(errors),
            started=np.array(started, dtype=float),  # None (never started) reads as NaN
            finished=np.array(finished, dtype=float),
            # None (JSON's stand-in for NaN) and a missing key both read as NaN
            metrics={k: np.array([d.get(k) for d in parsed], dtype=float) for k in names},
        )


@dataclass
class RunData:
    run_dir: Path
    config: SearchConfig
    manifest: dict[str, Any]
    trials: TrialColumns
    running: int = 0  # trials started and not finished (in flight, or cut off by a kill)

    @staticmethod
    def load(run_dir: Path) -> RunData:
        """Reads a run folder; one whose records are missing, empty or corrupt while it had
        trials raises `RunFolderError` naming the file (`mixnas.integrity.check_store`)."""
        from mixnas.integrity import check_store

        has_config, has_store = (run_dir / CONFIG).is_file(), (run_dir / DB_NAME).is_file()
        if not has_config and not has_store:
            raise NotARunError(f"{run_dir}: not a mixnas run folder (no {DB_NAME} / {CONFIG})")
        check_store(run_dir)
        if not has_store:  # stopped before its first trial finished
            raise NotARunError(f"{run_dir}: not a mixnas run folder (no {DB_NAME})")
        if not has_config:
            raise RunFolderError(f"{run_dir / CONFIG}: is missing; see 'mixnas doctor {run_dir}'")
        config = parse_config(read_json(run_dir / CONFIG), source=str(run_dir / CONFIG))
        manifest = read_json(run_dir / MANIFEST) if (run_dir / MANIFEST).is_file() else {}
        if not isinstance(manifest, dict):
            raise RunFolderError(f"{run_dir / MANIFEST}: is not a JSON object")
        try:
            with _reader(run_dir) as conn:
                trials = TrialColumns.read(conn)
                (running,) = conn.execute(
                    "SELECT COUNT(*) FROM trials WHERE status = ?", (RUNNING,)
                ).fetchone()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
            raise RunFolderError(f"{run_dir / DB_NAME}: cannot be read ({err})") from None
        except (TypeError, ValueError) as err:  # a row's values of the wrong type, bad JSON
            raise RunFolderError(
                f"{run_dir / DB_NAME}: holds a damaged record ({type(err).__name__}: {err}); "
                f"see 'mixnas doctor {run_dir}'"
            ) from None
        return RunData(run_dir, config, manifest, trials, int(running))

    @property
    def objectives(self) -> tuple[Any, ...]:
        return self.config.objectives

    # -- the front and the best trial, on columns ------------------------------------------------
    @cached_property
    def eligible(self) -> np.ndarray:
        """Which trials count for the front (see `mixnas.front.eligible`)."""
        t = self.trials
        return eligible_mask(t.status, t.metrics, self.objectives, self.config.constraints)

    @cached_property
    def losses(self) -> np.ndarray:
        """(n, m) objective losses of every trial (maximised objectives negated)."""
        values = np.column_stack([self.trials.metric(o.metric) for o in self.objectives])
        values = values.reshape(len(self.trials), len(self.objectives))
        return to_losses(values, [o.direction for o in self.objectives])

    @cached_property
    def on_front(self) -> np.ndarray:
        """(n,) which trials are on the Pareto front."""
        mask = np.zeros(len(self.trials), dtype=bool)
        rows = np.flatnonzero(self.eligible)
        mask[rows[nondominated(self.losses[rows])]] = True
        return mask

    def front(self) -> list[TrialRecord]:
        """The front's members as records, in trial order."""
        return list(self._front_records)

    @cached_property
    def _front_records(self) -> list[TrialRecord]:
        return self.records_of(np.flatnonzero(self.on_front))

    def best_index(self) -> int | None:
        """The position of the best eligible trial on the first objective (ties: the earlier)."""
        rows = np.flatnonzero(self.eligible)
        if rows.size == 0:
            return None
        first = self.losses[rows, 0]
        return int(rows[np.flatnonzero(first == first.min())[0]])

    def best(self) -> TrialRecord | None:
        i = self.best_index()
        return None if i is None else self.records_of([i])[0]

    def counts(self) -> Counter[str]:
        """Finished trials per status (the in-flight ones are `running`)."""
        return Counter(str(s) for s in self.trials.status)

    # -- records, built on demand ----------------------------------------------------------------
    def by_id(self, trial_id: int) -> TrialRecord | None:
        i = int(np.searchsorted(self.trials.trial_id, trial_id))
        if i == len(self.trials) or self.trials.trial_id[i] != trial_id:
            return None
        return self.records_of([i])[0]

    def records_of(self, positions: Sequence[int] | np.ndarray) -> list[TrialRecord]:
        """The trials at these positions (of `trials`) as full records, in the order given."""
        ids = [int(self.trials.trial_id[p]) for p in positions]
        found: dict[int, TrialRecord] = {}
        with _reader(self.run_dir) as conn:
            conn.row_factory = sqlite3.Row
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                query = f"SELECT * FROM trials WHERE trial_id IN ({', '.join('?' * len(chunk))})"
                for row in conn.execute(query, chunk):
                    record = _record(row)
                    found[record.trial_id] = record
        return [found[i] for i in ids]

    def specs_of(self, positions: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        """The specs of the trials at these positions, in the order given (a spec that does not
        read as a JSON object reads as ``{}``); reads only the spec column."""
        ids = [int(self.trials.trial_id[p]) for p in positions]
        found: dict[int, dict[str, Any]] = {}
        with _reader(self.run_dir) as conn:
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                query = (
                    f"SELECT trial_id, spec FROM trials WHERE trial_id IN "
                    f"({', '.join('?' * len(chunk))})"
                )
                for trial_id, text in conn.execute(query, chunk):
                    try:
                        spec = json.loads(text)
                    except (TypeError, ValueError):
                        spec = {}
                    found[int(trial_id)] = spec if isinstance(spec, dict) else {}
        return [found.get(i, {}) for i in ids]

    @property
    def records(self) -> list[TrialRecord]:
        """Every finished trial as a record, in trial order (reads every spec: slow at scale)."""
        return self.records_of(range(len(self.trials)))

    def descriptions(self) -> Iterator[dict[str, Any]]:
        """`describe_spec` of every trial in `trials`, in trial order, one spec in memory at a
        time (trials a running driver finished since `load` are passed over)."""
        if not len(self.trials):
            return
        loaded = set(self.trials.trial_id.tolist())
        with _reader(self.run_dir) as conn:
            query = (
                f"SELECT trial_id, spec FROM trials WHERE {_FINISHED_SQL} AND trial_id <= ? "
                "ORDER BY trial_id"
            )
            for trial_id, text in conn.execute(query, (*FINISHED, int(self.trials.trial_id[-1]))):
                if trial_id in loaded:
                    yield describe_spec(json.loads(text))


class _reader:
    """A connection to the run's database used only to read: no schema change, no write lock,
    so it reads while the driver writes (WAL)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / DB_NAME

    def __enter__(self) -> sqlite3.Connection:
        self.conn = sqlite3.connect(self.path, timeout=30.0)
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _floats(text: str) -> dict[str, float]:
    return {k: (math.nan if v is None else float(v)) for k, v in json.loads(text).items()}


_DECODE: dict[str, Callable[[str], Any]] = {
    "spec": json.loads,
    "metrics": _floats,
    "timings": _floats,
    "stages": lambda text: tuple(json.loads(text)),
}
_FIELDS = frozenset(f.name for f in fields(TrialRecord))


def _record(row: sqlite3.Row) -> TrialRecord:
    """A record from a row of any schema version: the columns `TrialRecord` has fields for."""
    # a Row iterates over its values, not its names
    values = {k: row[k] for k in row.keys() if k in _FIELDS}  # noqa: SIM118
    for key, decode in _DECODE.items():
        values[key] = decode(values[key])
    values["trial_id"] = int(values["trial_id"])
    return TrialRecord(**values)


def describe_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A readable summary of a spec: mixers per stage, depths, widths, bits per stage.

    Runs once per trial for ``trials.csv`` (100,000 times for a large run), hence one plain
    loop over the blocks; each stage lists its distinct mixers and bit widths in block order."""
    try:
        return _describe(spec)
    except (KeyError, TypeError, AttributeError):  # a damaged record (see mixnas doctor)
        return {"mixers": "(damaged spec)", "depths": "?", "widths": "?", "bits": "?"}


def _describe(spec: dict[str, Any]) -> dict[str, Any]:
    mixers, bits, depths, widths = [], [], [], []
    for st in spec.get("stages", []):
        blocks = st.get("blocks", [])
        names: dict[str, None] = {}
        policies: dict[str, None] = {}
        for b in blocks:
            names[b["token_mixer"]["name"]] = None
            quant = b.get("quant")
            if quant:
                policies[f"w{quant.get('weight_bits', 32)}a{quant.get('act_bits', 32)}"] = None
            else:
                policies["fp32"] = None
        mixers.append("+".join(names) or "-")
        bits.append("+".join(policies) or "-")
        depths.append(str(len(blocks)))
        widths.append(str(st.get("width", "?")))
    return {
        "mixers": " | ".join(mixers),
        "depths": "-".join(depths),
        "widths": "-".join(widths),
        "bits": " | ".join(bits),
    }
