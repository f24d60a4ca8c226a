"""Checking a run folder's records before they are read or continued, diagnosing, repairing.

The records (``trials.sqlite``) are the truth of a run, so they are checked, never replaced: a
store that is missing, empty (0 bytes), not an SQLite file, shorter than its own header says, or
that SQLite cannot read, in a folder whose checkpoint or event log says it had finished trials,
stops ``mixnas search --resume``, ``report``, ``export``, ``runs`` and `load_trials` with one line
naming the file and the problem (`check_store`, `RunFolderError`); nothing is written. An
SQLite store with the schema but fewer finished trials than the checkpoint has told (emptied
and re-created) is the same error.

Every finished trial is also written to the event log (``events.jsonl``), whole: spec, metrics,
timings, status, times (`mixnas.records.record_event`). A trial committed just before a kill and
not yet logged is logged when the resumed run reuses it (event ``reused``). So ``mixnas doctor
RUN`` (`diagnose`) can compare the store with the log: SQLite's integrity check, then every
logged trial must be in the store with the same spec and status. ``--repair`` (`repair`)
rebuilds every finished trial it can (readable rows of the old store first, the log for the
rest) into a new file beside the damaged one, ``trials.repaired.sqlite``; the damaged file is
never written. See docs/runs.md for how to put the new file in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixnas.manifest import CHECKPOINT, CONFIG, MANIFEST, read_json
from mixnas.progress import EVENTS
from mixnas.records import (
    DB_NAME,
    FINISHED,
    RUNNING,
    RunStore,
    TrialRecord,
    record_from_event,
)
from search_space.errors import RunFolderError

SQLITE_MAGIC = b"SQLite format 3\x00"
REPAIRED = "trials.repaired.sqlite"
TRIAL_EVENTS = ("trial", "reused")  # events that carry a finished trial's record
_SCAN = 1 << 20  # bytes of the event log's head and tail read to see whether it logs trials


# -- what the folder says it had ------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """What a run folder says about its finished trials, read cheaply: the checkpoint's count
    of told trials, and whether the event log records any finished trial."""

    told: int | None
    logged: bool

    @property
    def had_trials(self) -> bool:
        return bool(self.told) or self.logged

    def text(self) -> str:
        parts = []
        if self.told:
            parts.append(f"{CHECKPOINT} has told {self.told} finished trial(s)")
        if self.logged:
            parts.append(f"{EVENTS} records finished trials")
        return " and ".join(parts)


def claim(run_dir: Path) -> Claim:
    return Claim(_told(run_dir), _logs_trials(run_dir))


def _told(run_dir: Path) -> int | None:
    try:
        state = read_json(run_dir / CHECKPOINT)
        told = state.get("told", state.get("strategy", {}).get("told"))
        return int(told) if told is not None else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # no checkpoint, or one that says nothing readable


def _logs_trials(run_dir: Path) -> bool:
    """Whether the event log has a finished trial's event, from its first and last MiB (the
    first trial follows the 'start' line; a long log is not read whole)."""
    path = run_dir / EVENTS
    try:
        with open(path, "rb") as f:
            head = f.read(_SCAN)
            size = os.fstat(f.fileno()).st_size
            tail = b""
            if size > _SCAN:
                f.seek(max(_SCAN, size - _SCAN))
                tail = f.read(_SCAN)
    except OSError:
        return False
    return any(f'"event": "{e}"'.encode() in head + tail for e in TRIAL_EVENTS)


# -- the store's file ---------------------------------------------------------------------------
def file_problem(path: Path) -> str | None:
    """What is wrong with an SQLite file that can be seen without opening it (None: nothing
    seen): empty, not SQLite, or shorter than the page count its header gives (the header's
    count is only compared when no write-ahead log is pending, as SQLite writes it then)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if size == 0:
        return "is empty (0 bytes)"
    if not header.startswith(SQLITE_MAGIC):
        return "is not an SQLite database (its first bytes are not SQLite's header)"
    if len(header) < 100:
        return f"is truncated ({size} bytes, less than SQLite's 100-byte header)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    count_valid = header[24:28] == header[92:96]
    wal = path.with_name(path.name + "-wal")
    wal_pending = wal.is_file() and wal.stat().st_size > 0
    if count_valid and not wal_pending and pages * page_size > size:
        return (
            f"is truncated: its header counts {pages:,} pages of {page_size:,} bytes "
            f"({pages * page_size:,} bytes), the file has {size:,}"
        )
    return None


def read_only(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing into the run folder: with no write-ahead log pending,
    SQLite's ``immutable`` mode (no -wal/-shm files created); with one (a live or killed run),
    plain read-only, which reads the log."""
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.is_file() else "mode=ro&immutable=1"
    return sqlite3.connect(f"file:{path}?{mode}", uri=True, timeout=30.0)


def _count(conn: sqlite3.Connection) -> tuple[int, int]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "trials" not in tables:
        raise _NoTable
    placeholders = ", ".join("?" * len(FINISHED))
    (finished,) = conn.execute(
        f"SELECT COUNT(*) FROM trials WHERE status IN ({placeholders})", FINISHED
    ).fetchone()
    (running,) = conn.execute("SELECT COUNT(*) FROM trials WHERE status = ?", (RUNNING,)).fetchone()
    return int(finished), int(running)


class _NoTable(Exception):
    pass


def check_store(run_dir: Path) -> None:
    """Raises `RunFolderError` (one line, naming the file) when the run folder's store is
    missing, empty, not SQLite, truncated, unreadable, or holds fewer finished trials than the
    checkpoint has told, while the folder says it had trials; reads only, writes nothing.
    A folder with no store and no sign of trials passes (a run stopped before its first)."""
    path = run_dir / DB_NAME
    said = claim(run_dir)
    hint = f"see 'mixnas doctor {run_dir}' (--repair rebuilds the records from {EVENTS})"
    if not path.exists():
        if said.had_trials:
            raise RunFolderError(f"{path}: is missing, but {said.text()}; {hint}")
        return
    problem = file_problem(path)
    if problem == "is empty (0 bytes)" and not said.had_trials:
        return  # created and never written: SQLite reads it as an empty database
    if problem is None:
        try:
            conn = read_only(path)
            try:
                finished, _ = _count(conn)
            finally:
                conn.close()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
            problem = f"is corrupt (SQLite: {err})"
        except _NoTable:
            problem = "holds no trials table (not a mixnas store, or emptied)"
        else:
            if said.told is not None and finished < said.told:
                problem = (
                    f"holds {finished} finished trial(s) but {CHECKPOINT} has told {said.told}: "
                    "the records were damaged or replaced"
                )
            elif finished == 0 and said.logged:
                problem = f"holds no finished trial but {EVENTS} records finished trials"
    if problem is not None:
        raise RunFolderError(f"{path}: {problem}; {hint}")


# -- the event log --------------------------------------------------------------------------------
@dataclass
class LoggedTrials:
    """The event log read back: each finished trial's last full record, by trial id."""

    records: dict[int, TrialRecord] = field(default_factory=dict)
    without_spec: set[int] = field(default_factory=set)  # logged by a mixnas before the specs
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of unreadable lines
    cut_lines: list[int] = field(default_factory=list)  # lines cut short by a kill
    lines: int = 0


def read_events(run_dir: Path) -> LoggedTrials:
    log = LoggedTrials()
    path = run_dir / EVENTS
    if not path.is_file():
        return log
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            log.lines = number
            try:
                text = raw.decode("utf-8")
                event = json.loads(text)
            except json.JSONDecodeError:
                # a kill while a line was written leaves the start of an event, unclosed (the
                # next session starts a new line after it); anything else is damage
                cut = text.startswith('{"') and not text.rstrip().endswith("}")
                (log.cut_lines if cut else log.bad_lines).append(number)
                continue
            except (UnicodeDecodeError, ValueError, RecursionError):
                log.bad_lines.append(number)
                continue
            if not isinstance(event, dict) or event.get("event") not in TRIAL_EVENTS:
                continue
            record = record_from_event(event)
            if record is not None:
                log.records[record.trial_id] = record
                log.without_spec.discard(record.trial_id)
            elif (
                event.get("status") in FINISHED
                and isinstance(event.get("trial_id"), int)
                and event["trial_id"] not in log.records
            ):
                log.without_spec.add(int(event["trial_id"]))
    return log


# -- doctor ---------------------------------------------------------------------------------------
@dataclass
class Diagnosis:
    """What `diagnose` found: ``problems`` make a run damaged, ``notes`` do not."""

    run_dir: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    store_finished: int | None = None  # None: the store could not be read
    store_running: int = 0
    logged: int = 0
    recoverable: int = 0  # finished trials --repair would write
    told: int | None = None

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def store_damaged(self) -> bool:
        """Whether the records themselves are damaged (what --repair rebuilds)."""
        return any(p.startswith(DB_NAME) for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run_dir),
            "healthy": self.healthy,
            "problems": self.problems,
            "notes": self.notes,
            "store_finished": self.store_finished,
            "store_running": self.store_running,
            "logged": self.logged,
            "recoverable": self.recoverable,
            "told": self.told,
            "store_damaged": self.store_damaged,
        }


def is_run_folder(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(
        (run_dir / name).exists() for name in (CONFIG, DB_NAME, EVENTS, CHECKPOINT)
    )


def diagnose(run_dir: Path) -> Diagnosis:
    """Checks every file of a run folder and compares the store with the event log; reads
    only. Each damaged file is one problem naming it; see the module docstring."""
    d = Diagnosis(run_dir)
    _check_json_files(run_dir, d)
    path = run_dir / DB_NAME
    stored = _store_records(path, d)
    log = read_events(run_dir)
    d.logged = len(log.records) + len(log.without_spec)
    if log.cut_lines:
        d.notes.append(
            f"{EVENTS}: {len(log.cut_lines)} line(s) cut short by a kill (line "
            f"{_ids(log.cut_lines)}; harmless: a trial whose event was cut is logged again "
            "when the resumed run reuses it)"
        )
    if log.bad_lines:
        d.problems.append(
            f"{EVENTS}: {len(log.bad_lines)} line(s) cannot be read (line {_ids(log.bad_lines)})"
        )
    if log.without_spec:
        d.notes.append(
            f"{EVENTS}: {len(log.without_spec)} logged trial(s) carry no spec (logged by an "
            "older mixnas): --repair can rebuild them only from the store"
        )
    if stored is not None:
        missing = sorted(set(log.records) - set(stored))
        if missing:
            d.problems.append(
                f"{DB_NAME}: lacks {len(missing)} finished trial(s) that {EVENTS} records "
                f"(trial {_ids(missing)})"
            )
        differ = sorted(
            i for i in set(log.records) & set(stored) if _key(log.records[i]) != _key(stored[i])
        )
        if differ:
            d.problems.append(
                f"{DB_NAME}: {len(differ)} trial(s) differ from {EVENTS} in spec, status or "
                f"metrics (trial {_ids(differ)})"
            )
        unlogged = sorted(set(stored) - set(log.records) - log.without_spec)
        if unlogged:
            d.notes.append(
                f"{len(unlogged)} finished trial(s) are in {DB_NAME} but not in {EVENTS} "
                f"(trial {_ids(unlogged)}): safe in the store, but --repair could not rebuild "
                "them from the log"
            )
    d.recoverable = len({**log.records, **(stored or {})})
    if d.told is not None and d.store_finished is not None and d.store_finished < d.told:
        d.problems.append(
            f"{DB_NAME}: holds {d.store_finished} finished trial(s) but {CHECKPOINT} has told "
            f"{d.told}: the records were damaged or replaced"
        )
    if d.store_damaged:
        d.notes.append(_repair_note(d, log))
    return d


def _key(record: TrialRecord) -> tuple[Any, ...]:
    """What the store and the log must agree on (NaN metrics compare equal, as null)."""
    metrics = {k: (v if v == v else None) for k, v in record.metrics.items()}
    return (record.spec_id, record.status, json.dumps(record.spec, sort_keys=True), metrics)


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:5])) + (f", ... {len(ids) - 5} more" if len(ids) > 5 else "")


def _repair_note(d: Diagnosis, log: LoggedTrials) -> str:
    if not d.recoverable:
        return f"--repair: nothing to rebuild (no readable record and no logged spec in {EVENTS})"
    return (
        f"--repair: {d.recoverable} finished trial(s) can be rebuilt into {REPAIRED} "
        f"(mixnas doctor {d.run_dir} --repair)"
    )


def _check_json_files(run_dir: Path, d: Diagnosis) -> None:
    from mixnas.config import parse_config

    config = run_dir / CONFIG
    if not config.is_file():
        d.problems.append(f"{CONFIG}: is missing; the run cannot be resumed or reported")
    else:
        try:
            parse_config(read_json(config), source=str(config))
        except (OSError, ValueError) as err:
            d.problems.append(
                f"{CONFIG}: {_strip(err, config)}; {MANIFEST} holds the config the run started "
                "with (its 'config' field)"
            )
    manifest = run_dir / MANIFEST
    if not manifest.is_file():
        d.notes.append(f"{MANIFEST}: is missing (the run's versions and host are unknown)")
    else:
        try:
            if not isinstance(read_json(manifest), dict):
                raise ValueError("is not a JSON object")
        except (OSError, ValueError) as err:
            d.problems.append(f"{MANIFEST}: {_strip(err, manifest)}")
    checkpoint = run_dir / CHECKPOINT
    if checkpoint.is_file():
        try:
            state = read_json(checkpoint)
            if not isinstance(state, dict) or not isinstance(state.get("strategy"), dict):
                raise ValueError("is not a strategy checkpoint")
            d.told = int(state.get("told", state["strategy"].get("told", 0)))
        except (OSError, ValueError, TypeError) as err:
            d.problems.append(
                f"{CHECKPOINT}: {_strip(err, checkpoint)}; a resume rebuilds the strategy from "
                "the records (a new random stream)"
            )


def _strip(err: Exception, path: Path) -> str:
    """An error's text without the file name the line already starts with."""
    text = str(err)
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _store_records(path: Path, d: Diagnosis) -> dict[int, TrialRecord] | None:
    """The finished trials readable from the store (None when it cannot be read at all), with
    SQLite's full integrity check; problems go into ``d``."""
    if not path.exists():
        if claim(path.parent).had_trials:
            d.problems.append(f"{DB_NAME}: is missing")
            return None
        d.notes.append(f"{DB_NAME}: not created yet (no trial has finished)")
        return {}
    problem = file_problem(path)
    if problem is not None:
        d.problems.append(f"{DB_NAME}: {problem}")
        return None
    try:
        conn = read_only(path)
    except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
        d.problems.append(f"{DB_NAME}: cannot be opened (SQLite: {err})")
        return None
    # SQLite's messages may quote damaged text: read it, never fail on it
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    try:
        try:
            report = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
        except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
            d.problems.append(f"{DB_NAME}: is corrupt (SQLite: {err})")
            return None
        if report != ["ok"]:
            d.problems.append(
                f"{DB_NAME}: SQLite's integrity check fails ({'; '.join(report[:3])}"
                f"{'; ...' if len(report) > 3 else ''})"
            )
        try:
            d.store_finished, d.store_running = _count(conn)
        except _NoTable:
            d.problems.append(f"{DB_NAME}: holds no trials table")
            return None
        except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
            d.problems.append(f"{DB_NAME}: cannot be counted (SQLite: {err})")
        bad: list[int] = []
        records = _salvage(conn, bad)
        if bad:
            d.problems.append(
                f"{DB_NAME}: {len(bad)} finished trial row(s) hold damaged text (trial "
                f"{_ids(sorted(bad))})"
            )
        return records
    finally:
        conn.close()


def _salvage(conn: sqlite3.Connection, bad: list[int] | None = None) -> dict[int, TrialRecord]:
    """The finished records a store still yields: rows read one at a time (text as bytes), so
    a damaged row (text that is not UTF-8, JSON that does not parse) is skipped, its trial id
    added to ``bad``, and the rest kept; up to the first unreadable page."""
    from mixnas.records import _COLUMNS, _record

    placeholders = ", ".join("?" * len(FINISHED))
    out: dict[int, TrialRecord] = {}
    previous = conn.text_factory
    conn.text_factory = bytes
    try:
        for row in conn.execute(
            f"SELECT {_COLUMNS}, seq FROM trials WHERE status IN ({placeholders})", FINISHED
        ):
            try:
                text = tuple(v.decode("utf-8") if isinstance(v, bytes) else v for v in row)
                record = _record(text)
            except (ValueError, TypeError, AttributeError, RecursionError):
                if bad is not None and isinstance(row[0], int):
                    bad.append(row[0])
                continue
            out[record.trial_id] = record
    except (sqlite3.DatabaseError, UnicodeDecodeError):
        pass
    finally:
        conn.text_factory = previous
    return out


@contextlib.contextmanager
def reading_records(run_dir: Path) -> Iterator[None]:
    """Turns a failure of the records while a command works on them (a row whose text SQLite
    or JSON cannot decode, damage `check_store`'s quick look does not see; a disk that is full)
    into one line naming the store. What was committed before stays committed."""
    path = run_dir / DB_NAME
    hint = f"see 'mixnas doctor {run_dir}'"
    try:
        yield
    except sqlite3.DatabaseError as err:
        raise RunFolderError(
            f"{path}: the records cannot be read or written (SQLite: {err}); {hint}"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{path}: a record holds damaged text ({err}); {hint}") from None


# -- repair ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Repair:
    path: Path
    written: int
    from_store: int
    from_log: int
    told: int | None


def repair(run_dir: Path) -> Repair:
    """Writes every finished trial that can be rebuilt (readable rows of the store, then the
    event log) into a new store file, `REPAIRED`, in tell order; the damaged file is only
    read. Raises `RunFolderError` when there is nothing to rebuild or the new file exists."""
    target = run_dir / REPAIRED
    if target.exists():
        raise RunFolderError(
            f"{target}: exists already (an earlier repair?); move it away to repair again"
        )
    stored: dict[int, TrialRecord] = {}
    path = run_dir / DB_NAME
    if path.exists() and file_problem(path) is None:
        try:
            conn = read_only(path)
            try:
                stored = _salvage(conn)
            finally:
                conn.close()
        except (sqlite3.DatabaseError, UnicodeDecodeError):
            stored = {}
    log = read_events(run_dir)
    merged = {**log.records, **stored}  # a readable row of the store is the truth
    if not merged:
        raise RunFolderError(
            f"{run_dir}: nothing to rebuild: no readable finished trial in {DB_NAME} and no "
            f"logged trial with its spec in {EVENTS}"
        )

    def order(r: TrialRecord) -> tuple[int, int]:
        return (r.seq if r.seq is not None else 1 << 62, r.trial_id)

    partial = run_dir / f".{REPAIRED}.tmp"
    for leftover in run_dir.glob(f".{REPAIRED}.tmp*"):
        leftover.unlink()  # an interrupted earlier repair
    with RunStore(run_dir, file=partial.name) as store:
        store.finish_many(sorted(merged.values(), key=order))
    # closing the last connection folds the write-ahead log into the file: one file to move
    for leftover in run_dir.glob(f".{REPAIRED}.tmp-*"):
        leftover.unlink()
    os.replace(partial, target)
    return Repair(
        target,
        len(merged),
        len(stored),
        len(merged) - len(set(stored)),
        _told(run_dir),
    )
