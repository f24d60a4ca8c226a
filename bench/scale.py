"""Runs at scale: ms/trial from 100 to 100,000 trials, mixnas's backends beside Optuna and Ray Tune.

The workload is one cheap trial: a candidate of the ``hybrid`` space and its analytic costs (MACs
and parameters, about a millisecond), two objectives minimized. Every system runs it at each count
(``--counts``), one cell (system x count) at a time, each in its own process:

- ``mixnas-inline``, ``mixnas-local``, ``mixnas-ray``: ``mixnas search CONFIG -q`` with the
  ``cost`` evaluator, NSGA-II (population 50), backend ``{name: local, workers: 0}`` (trials in
  the driver, in batches), ``{name: local, workers: 2, batch: 1}`` (two worker processes, one
  candidate per dispatch) or ``{name: ray, workers: 2}`` (batches per Tune trial); ``export: null``.
  Then ``mixnas search --resume RUN --budget K`` on the finished run (nothing left to do: the time
  to start, restore and exit, with the report ``mixnas search`` always rewrites) and ``mixnas
  report RUN``.
- ``optuna-memory``, ``optuna-sqlite``, ``optuna-journal``: ``NSGAIISampler(population_size=50)``
  with in-memory, SQLite and journal-file storage; the objective suggests the same space's
  decisions (the define-by-run walk of `strategies.optuna_adapter`) and computes the same
  ``spec_cost``; the space's analytic bounds become Optuna constraints.
- ``raytune``: ``tune.Tuner`` with a trivial trainable (it reports a constant), two concurrent
  trials, actors reused.

Each cell has a wall-time cap (``--cap-seconds``): mixnas gets ``--seconds CAP``, Optuna
``timeout=CAP``, Tune ``time_budget_s=CAP``, and a process still running CAP + 120 s after its
start is killed. A capped cell is reported as "stopped at K trials after S s" with its figures
so far; a system capped at one count is not run again at larger counts (the cell would repeat the
same capped run), unless ``--no-skip-after-cap``.

Figures per cell, from each finished trial's timestamp (mixnas: ``finished`` in trials.sqlite;
Optuna: a study callback, right after the trial is stored; Tune: a callback's
``on_trial_complete`` in the driver): start-up (process start
to the first finished trial), ms/trial (first to last finished trial over the trials between),
ms/trial over the first and the last 10% of the trials, and the storage on disk (run folder,
SQLite file, journal file, Tune's experiment folder). ``--growth 2000`` compares mixnas-inline
with optuna-sqlite over the first and last 300 trials of a 2,000-trial run. ``--kill-check N``
SIGKILLs an inline run of N trials at a seeded random point, resumes it and checks its records
(``--kill-reference``: also against an uninterrupted run of the same seed).

    python bench/scale.py --counts 100,1000,10000,100000 --kill-check 100000 \\
        --json scale.json --out docs/benchmarks.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import math
import platform
import random
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## Runs at scale (`bench/scale.py`)"
# mixnas-local is pinned to one candidate per dispatch: with the cost evaluator alone the driver
# would otherwise evaluate in batches in its own process, the same run as mixnas-inline, and the
# cell would not measure the worker processes at all
MIXNAS_BACKENDS: dict[str, dict[str, Any]] = {
    "mixnas-inline": {"name": "local", "workers": 0},
    "mixnas-local": {"name": "local", "workers": 2, "batch": 1},
    "mixnas-ray": {"name": "ray", "workers": 2},
}
OPTUNA_STORAGES = ("optuna-memory", "optuna-sqlite", "optuna-journal")
SYSTEMS = (*MIXNAS_BACKENDS, *OPTUNA_STORAGES, "raytune")
POPULATION = 50
GRACE_S = 120.0  # past the cap: start-up, the report at the end, Ray's shutdown
FINISHED = ("ok", "failed", "pruned")
MIXNAS = [sys.executable, "-m", "mixnas"]


# -- pure figures ---------------------------------------------------------------------------------


def window_size(trials: int, fraction: float = 0.1) -> int:
    """Trials in a window of ``fraction`` of a run (at least one)."""
    return max(1, round(trials * fraction))


def window_ms(finished: Sequence[float], k: int, *, last: bool) -> float | None:
    """Mean ms per trial over the first (or last) ``k`` trials of sorted finish times: the time
    between the finishes that bound the window over ``k`` (the first trial's own start-up is
    not in it). Runs shorter than ``k + 1`` trials use all of them; None below two trials."""
    n = len(finished)
    if n < 2:
        return None
    k = min(k, n - 1)
    lo, hi = (n - 1 - k, n - 1) if last else (0, k)
    return (finished[hi] - finished[lo]) / k * 1e3


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def cap_status(trials: int, count: int, wall_s: float, *, killed: bool, rc: int) -> str:
    """'complete', or what stopped the cell short of its count."""
    if trials >= count and rc == 0:
        return "complete"
    if killed:
        return f"killed at the hard limit: stopped at {trials:,} trials after {wall_s:.0f} s"
    if rc != 0:
        return f"failed (exit {rc}) after {trials:,} trials and {wall_s:.0f} s"
    return f"stopped at {trials:,} trials after {wall_s:.0f} s"


def summarize(
    finished: Sequence[float],
    *,
    count: int,
    launched: float,
    wall_s: float,
    killed: bool = False,
    rc: int = 0,
    fraction: float = 0.1,
) -> dict[str, Any]:
    """The cell's figures from its trials' finish times (epoch seconds, any order)."""
    times = sorted(finished)
    n = len(times)
    k = window_size(n, fraction)
    first = window_ms(times, k, last=False)
    last = window_ms(times, k, last=True)
    return {
        "count": count,
        "trials": n,
        "complete": n >= count and rc == 0,
        "status": cap_status(n, count, wall_s, killed=killed, rc=rc),
        "wall_s": wall_s,
        "startup_s": times[0] - launched if times else None,
        "ms_per_trial": window_ms(times, n - 1, last=False) if n > 1 else None,
        "window": k,
        "first_ms": first,
        "last_ms": last,
        "last_over_first": ratio(last, first),
    }


def capped_earlier(cells: Sequence[dict[str, Any]], system: str) -> dict[str, Any] | None:
    """The first cell of ``system`` that ran into its cap, if any (larger counts would repeat
    it)."""
    for cell in cells:
        if cell["system"] == system and not cell.get("skipped") and not cell["complete"]:
            return cell
    return None


def _num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:,.{digits}f}"


def _ms(x: float | None) -> str:
    return _num(x, 2 if x is not None and x < 10 else 1)


def _mb(n: int | None) -> str:
    return "—" if not n else f"{n / 1e6:,.2f}"


def format_cell(cell: dict[str, Any]) -> str:
    """One row of the results table."""
    head = f"| {cell['count']:,} | {cell['system']} |"
    if cell.get("skipped"):
        return head + f" — | not run: {cell['skipped']} |" + " — |" * 9
    return (
        f"{head} {cell['trials']:,} | {cell['status']} | {_num(cell['wall_s'])} | "
        f"{_num(cell['startup_s'])} | {_ms(cell['ms_per_trial'])} | {_ms(cell['first_ms'])} | "
        f"{_ms(cell['last_ms'])} | {_num(cell['last_over_first'], 2)} | "
        f"{_mb(cell.get('storage_bytes'))} | {_num(cell.get('resume_s'))} | "
        f"{_num(cell.get('report_s'))} |"
    )


# -- processes ------------------------------------------------------------------------------------


@dataclass
class Proc:
    rc: int
    launched: float
    wall_s: float
    killed: bool
    tail: str


def run_timed(cmd: Sequence[str], timeout: float, log: Path) -> Proc:
    """Runs ``cmd`` in its own process group, output to ``log``; the whole group is killed past
    ``timeout`` seconds."""
    launched = time.time()
    killed = False
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
            killed = True
    wall = time.time() - launched
    tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    return Proc(rc, launched, wall, killed, tail)


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- mixnas ---------------------------------------------------------------------------------------


def mixnas_config(system: str, trials: int, seed: int, batch: int | None) -> dict[str, Any]:
    backend = dict(MIXNAS_BACKENDS[system])
    if batch is not None and "batch" not in backend:
        backend["batch"] = batch
    return {
        "name": system,
        "seed": seed,
        "space": "hybrid",
        "objectives": [
            {"metric": "macs", "direction": "minimize"},
            {"metric": "params", "direction": "minimize"},
        ],
        "evaluators": ["cost"],
        "strategy": {"name": "nsga2", "options": {"population_size": POPULATION}},
        "budget": {"trials": trials},
        "backend": backend,
        "export": None,
    }


def read_records(run_dir: Path) -> list[tuple[int, str, str, float | None]]:
    """``(trial_id, spec_id, status, finished)`` of every row in a run's trials.sqlite."""
    db = run_dir / "trials.sqlite"
    if not db.is_file():
        return []
    con = sqlite3.connect(db, timeout=30.0)
    try:
        return con.execute("SELECT trial_id, spec_id, status, finished FROM trials").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was written
        return []
    finally:
        con.close()


def finish_times(rows: Sequence[tuple[int, str, str, float | None]]) -> list[float]:
    return [f for _, _, status, f in rows if status in FINISHED and f is not None]


def driver_start(run_dir: Path, after: float) -> float | None:
    """Seconds from ``after`` to the first 'start' event the driver logged after it (the log's
    tail is read backwards: a session's events follow the earlier sessions')."""
    events = run_dir / "events.jsonl"
    if not events.is_file():
        return None
    found = None
    for line in reversed(events.read_text().splitlines()):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        when = float(event.get("time", 0.0))
        if when < after:
            break
        if event.get("event") == "start":
            found = when - after
    return found


def process_cell(system: str, count: int, finished: list[float], proc: Any) -> dict[str, Any]:
    """A cell's figures from its finish times and the process that produced them."""
    cell = summarize(
        finished,
        count=count,
        launched=proc.launched,
        wall_s=proc.wall_s,
        killed=proc.killed,
        rc=proc.rc,
    )
    cell["system"] = system
    if proc.rc != 0:
        cell["error"] = proc.tail
    return cell


def run_mixnas(
    system: str, count: int, args: argparse.Namespace, work: Path, *, extras: bool
) -> tuple[dict[str, Any], list[float]]:
    name = f"{system}-{count}"
    config = work / f"{name}.json"
    config.write_text(json.dumps(mixnas_config(system, count, args.seed, args.batch)))
    runs = work / "runs"
    run_dir = runs / name
    shutil.rmtree(run_dir, ignore_errors=True)
    runs.mkdir(parents=True, exist_ok=True)
    cap = args.cap_seconds
    search = [*MIXNAS, "search", str(config), "-q", "--name", name, "--runs-dir", str(runs)]
    proc = run_timed(
        [*search, "--budget", str(count), "--seconds", f"{cap:g}"],
        cap + GRACE_S,
        run_dir.with_suffix(".log"),
    )
    finished = finish_times(read_records(run_dir))
    cell = process_cell(system, count, finished, proc)
    if run_dir.is_dir():
        cell["storage_bytes"] = folder_size(run_dir)
        cell["records_bytes"] = sum(folder_size(p) for p in run_dir.glob("trials.sqlite*"))
    if extras and finished:
        resume = run_timed(
            [*MIXNAS, "search", "--resume", str(run_dir), "--budget", str(len(finished)), "-q"],
            cap + GRACE_S,
            run_dir.with_suffix(".resume.log"),
        )
        cell["resume_s"] = resume.wall_s if resume.rc == 0 else None
        cell["resume_startup_s"] = driver_start(run_dir, resume.launched)
        if resume.rc != 0:
            cell["resume_error"] = resume.tail
        report = run_timed(
            [*MIXNAS, "report", str(run_dir)], cap + GRACE_S, run_dir.with_suffix(".report.log")
        )
        cell["report_s"] = report.wall_s if report.rc == 0 else None
        if report.rc != 0:
            cell["report_error"] = report.tail
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return cell, finished


# -- peers (each in a child process: python bench/scale.py --cell SYSTEM ...) ---------------------


def _optuna_cell(
    system: str, count: int, cap: float, seed: int, store: Path, stamps: _Stamps
) -> dict[str, Any]:
    import optuna

    from search_space import load_space, spec_cost
    from strategies.optuna_adapter import suggest_decisions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space("hybrid")
    bounds = [
        (c.metric, limit, sign)
        for c in space.constraints
        if c.analytic
        for limit, sign in ((c.max, 1.0), (c.min, -1.0))
        if limit is not None
    ]
    feasible = 0

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        # the define-by-run walk of the optuna adapters: only active, non-trivial decisions
        nonlocal feasible
        values = suggest_decisions(trial, space)
        cost = spec_cost(space.decode(values)).to_dict()
        violations = [sign * (cost[m] - lim) / abs(lim) for m, lim, sign in bounds]
        for (metric, limit, sign), value in zip(bounds, violations, strict=True):
            trial.set_constraint(f"{metric}{'<=' if sign > 0 else '>='}{limit:g}", value)
        feasible += all(v <= 0 for v in violations)
        return float(cost["macs"]), float(cost["params"])

    storage: Any = None  # optuna-memory: nothing on disk
    if system != "optuna-memory":
        store.mkdir(parents=True, exist_ok=True)
    if system == "optuna-sqlite":
        storage = f"sqlite:///{store / 'optuna.sqlite3'}"
    elif system == "optuna-journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(str(store / "optuna.journal")))
    sampler = optuna.samplers.NSGAIISampler(population_size=POPULATION, seed=seed)
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=sampler, storage=storage, study_name="scale"
    )
    # a study callback runs right after the trial is told (stored): its datetime_complete
    study.optimize(
        objective,
        n_trials=count,
        timeout=cap,
        callbacks=[lambda _study, _trial: stamps.write(f"{time.time():.6f}\n")],
    )
    return {"feasible": feasible}


class _Stamps:
    """Appends a time per line to a file, opened at first use: Ray Tune pickles its callbacks
    before the run, and an open file does not pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_file": None}

    def write(self, text: str) -> None:
        if self._file is None:
            self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 - kept open
        self._file.write(text)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _raytune_cell(count: int, cap: float, store: Path, stamps: _Stamps) -> dict[str, Any]:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    class Stamp(tune.Callback):
        def __init__(self, stamps: _Stamps) -> None:
            self.stamps = stamps

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            self.stamps.write(f"{time.time():.6f}\n")

    def trivial(config: dict[str, Any]) -> dict[str, float]:
        return {"score": 1.0}

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trivial, {"cpu": 1}),
            tune_config=tune.TuneConfig(
                num_samples=count, max_concurrent_trials=2, reuse_actors=True, time_budget_s=cap
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(store.resolve()),
                verbose=0,
                callbacks=[Stamp(stamps)],
            ),
        )
        tuner.fit()
    finally:
        ray.shutdown()
    return {}


def cell_main(args: argparse.Namespace) -> int:
    """A peer's cell in this process: each finished trial's time is written to ``finished.txt``
    at once (a cell killed at its hard limit keeps them), the rest to ``cell.json``."""
    out = Path(args.cell_dir)
    store = out / "storage"
    stamps = _Stamps(out / "finished.txt")
    try:
        if args.cell == "raytune":
            result = _raytune_cell(args.count, args.cap_seconds, store, stamps)
        else:
            result = _optuna_cell(args.cell, args.count, args.cap_seconds, args.seed, store, stamps)
    finally:
        stamps.close()
    (out / "cell.json").write_text(json.dumps(result))
    return 0


def run_peer(
    system: str, count: int, args: argparse.Namespace, work: Path
) -> tuple[dict[str, Any], list[float]]:
    cell_dir = work / f"{system}-{count}"
    shutil.rmtree(cell_dir, ignore_errors=True)
    cell_dir.mkdir(parents=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cell", system, "--cell-dir"]
    cmd += [str(cell_dir), "--count", str(count), "--cap-seconds", f"{args.cap_seconds:g}"]
    cmd += ["--seed", str(args.seed)]
    proc = run_timed(cmd, args.cap_seconds + GRACE_S, work / f"{system}-{count}.log")
    result_file, stamps = cell_dir / "cell.json", cell_dir / "finished.txt"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    finished = [float(t) for t in stamps.read_text().split()] if stamps.is_file() else []
    cell = process_cell(system, count, finished, proc)
    if "feasible" in result:
        cell["feasible"] = result["feasible"]
    store = cell_dir / "storage"
    cell["storage_bytes"] = folder_size(store) if store.is_dir() else None
    if not args.keep:
        shutil.rmtree(cell_dir, ignore_errors=True)
    return cell, finished


def run_cell(
    system: str, count: int, args: argparse.Namespace, work: Path, *, extras: bool = True
) -> tuple[dict[str, Any], list[float]]:
    """One cell's figures, and its trials' finish times (sorted)."""
    if system in MIXNAS_BACKENDS:
        cell, finished = run_mixnas(system, count, args, work, extras=extras)
    else:
        cell, finished = run_peer(system, count, args, work)
    return cell, sorted(finished)


# -- growth and the kill check --------------------------------------------------------------------


def growth_figures(finished: Sequence[float], window: int, status: str) -> dict[str, Any]:
    """ms/trial over the first and the last ``window`` trials, and their ratio."""
    times = sorted(finished)
    first = window_ms(times, window, last=False)
    last = window_ms(times, window, last=True)
    return {
        "trials": len(times),
        "status": status,
        "first_ms": first,
        "last_ms": last,
        "ratio": ratio(last, first),
    }


def _told(db: Path) -> int:
    """Finished trials so far, read without creating or locking anything (index lookup)."""
    if not db.is_file():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return 0
    try:
        top = con.execute("SELECT MAX(seq) FROM trials").fetchone()[0]
        return 0 if top is None else int(top) + 1
    except sqlite3.Error:  # no table yet (or no seq column: count, a slower scan)
        try:
            return int(con.execute(_COUNT_FINISHED).fetchone()[0])
        except sqlite3.Error:
            return 0
    finally:
        con.close()


_COUNT_FINISHED = "SELECT COUNT(*) FROM trials WHERE status IN ('ok', 'failed', 'pruned')"


def kill_check(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """An inline run of ``n`` trials, SIGKILLed at a seeded random point (once a random number
    of trials has been committed, plus a random delay of up to a quarter second so that the
    kill can land anywhere in a batch: evaluation, commit, checkpoint, or the report at the
    end), then resumed to the end."""
    rng = random.Random(args.seed)
    target, jitter = rng.randint(1, max(1, n - 1)), rng.uniform(0.0, 0.25)
    name = f"kill-{n}"
    config = work / f"{name}.json"
    config.write_text(json.dumps(mixnas_config("mixnas-inline", n, args.seed, args.batch)))
    run_dir = work / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*MIXNAS, "search", str(config), "-q", "--name", name, "--runs-dir", str(run_dir.parent)]
    launched = time.time()
    with open(run_dir.with_suffix(".log"), "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = launched + args.cap_seconds + GRACE_S
        while proc.poll() is None and time.time() < deadline:
            if _told(run_dir / "trials.sqlite") >= target:
                time.sleep(jitter)
                break
            time.sleep(0.02)
        exercised = proc.poll() is None
        if exercised:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = time.time()
    rows = read_records(run_dir)
    at_kill = len(finish_times(rows))
    in_flight = sum(1 for r in rows if r[2] not in FINISHED)
    resume = run_timed(
        [*MIXNAS, "search", "--resume", str(run_dir), "-q"],
        args.cap_seconds + GRACE_S,
        run_dir.with_suffix(".resume.log"),
    )
    rows = read_records(run_dir)
    ids = [r[0] for r in rows if r[2] in FINISHED]
    new = [f for f in finish_times(rows) if f > killed_at]
    first_new = min(new) - resume.launched if new else None
    checks = {
        "resume exited 0": resume.rc == 0,
        f"finished trials = {n:,}": len(ids) == n,
        f"trial ids are 0..{n - 1:,}": sorted(ids) == list(range(n)),
        "no trial id twice": len(set(ids)) == len(ids),
        "no unfinished row left": all(r[2] in FINISHED for r in rows),
        "no spec evaluated twice (spec ids distinct)": len({r[1] for r in rows}) == len(rows),
    }
    if args.kill_reference:
        checks["same trials as an uninterrupted run (id, spec, status)"] = _same_as_reference(
            n, args, work, rows
        )
    startup = first_new if first_new is not None else driver_start(run_dir, resume.launched)
    result: dict[str, Any] = {
        "trials": n,
        "exercised": exercised,
        "target": target,
        "killed_after_s": killed_at - launched,
        "finished_at_kill": at_kill,
        "unfinished_at_kill": in_flight,
        "resume_wall_s": resume.wall_s,
        "resume_to_driver_start_s": driver_start(run_dir, resume.launched),
        "resume_to_first_new_record_s": first_new,
        "resume_startup_s": startup,
        "resume_under_30s": startup is not None and startup < 30.0,
        "total_wall_s": killed_at - launched + resume.wall_s,
        "checks": checks,
        "passed": exercised and all(checks.values()),
    }
    if resume.rc != 0:
        result["error"] = resume.tail
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def _same_as_reference(
    n: int, args: argparse.Namespace, work: Path, rows: Sequence[tuple[Any, ...]]
) -> bool:
    name = f"kill-{n}-reference"
    config = work / f"{name}.json"
    config.write_text(json.dumps(mixnas_config("mixnas-inline", n, args.seed, args.batch)))
    runs = work / "runs"
    shutil.rmtree(runs / name, ignore_errors=True)
    cmd = [*MIXNAS, "search", str(config), "-q", "--name", name, "--runs-dir", str(runs)]
    run_timed(cmd, args.cap_seconds + GRACE_S, runs / f"{name}.log")
    reference = read_records(runs / name)
    if not args.keep:
        shutil.rmtree(runs / name, ignore_errors=True)
    return sorted(r[:3] for r in rows) == sorted(r[:3] for r in reference)


# -- the section ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("optuna", "ray"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def merge_cells(
    cells: list[dict[str, Any]], earlier: list[dict[str, Any]], systems: Sequence[str]
) -> list[dict[str, Any]]:
    """This run's cells, with the earlier run's cells of the other systems, in table order."""
    kept = [c for c in earlier if c["system"] not in systems]
    order = {name: i for i, name in enumerate(SYSTEMS)}
    return sorted([*cells, *kept], key=lambda c: (c["count"], order.get(c["system"], 99)))


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    load = result["load"]
    lines = [
        SECTION,
        "",
        f"```\n{result['command']}\n```",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, Optuna {m['optuna']}, "
        f"Ray {m['ray']}; one BLAS/OpenMP thread per process. Load average "
        f"{load['start']:.2f} at the start, {load['end']:.2f} at the end"
        + (f"; {result['note']}" if result.get("note") else "")
        + f". Cap per cell: {result['cap_seconds']:g} s"
        + (f"; mixnas `backend.batch: {result['batch']}`" if result.get("batch") else "")
        + ".",
        "",
        *(
            [
                "The rows of the systems this command did not run come from an earlier run on "
                f"the same machine: `{result['reused']['command']}`.",
                "",
            ]
            if result.get("reused")
            else []
        ),
        "A trial is one `hybrid` candidate and its analytic costs (MACs, parameters; about 1 ms), "
        "two objectives minimized, NSGA-II with a population of 50 in every system (Ray Tune: a "
        "trivial trainable that reports a constant). Start-up: process start to the first "
        "finished trial. ms/trial: from the first to the last finished trial, per trial; first/"
        "last 10%: the same over the first and the last tenth of the trials. Storage: the run "
        "folder (mixnas, with its report), the SQLite or journal file (Optuna), Tune's "
        "experiment folder. Resume: `mixnas search --resume RUN --budget K` on the finished run "
        "(nothing to run: start, restore, rewrite the report, exit). Report: `mixnas report RUN`. "
        "mixnas evaluates cheap trials in in-driver batches committed together (64 by default), "
        "so a window of trials carries the batches' ask, commit and checkpoint only in whole "
        "steps: below about 1,000 trials a 10% window holds at most a batch or two, and its "
        "figure and ratio show where the batch boundaries fall rather than a growth.",
        "",
        "| trials asked | system | trials | status | wall (s) | start-up (s) | ms/trial | "
        "first 10% | last 10% | last/first | storage (MB) | resume (s) | report (s) |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [format_cell(c) for c in result["cells"]]
    feasible = [c for c in result["cells"] if "feasible" in c and c["trials"]]
    if feasible:
        share = sum(c["feasible"] for c in feasible) / sum(c["trials"] for c in feasible)
        lines += [
            "",
            "An Optuna trial that breaks the space's bounds (params <= 6M, MACs <= 400M) is "
            f"told as a constraint violation and counts ({share:.1%} of its trials were "
            "feasible); mixnas checks the bounds when it asks and never proposes one.",
        ]
    for cell in result["cells"]:
        if cell["system"] == "mixnas-inline" and cell["count"] >= 100_000 and cell.get("trials"):
            ok = cell["complete"] and cell["wall_s"] < 600
            lines += [
                "",
                f"- {cell['count']:,} inline trials complete in under 10 minutes: "
                f"{'yes' if ok else 'no'} ({cell['status']}, {cell['wall_s']:.0f} s)",
            ]
    growth = result.get("growth")
    if growth:
        w = growth["window"]
        lines += [
            "",
            f"Growth at {growth['trials']:,} trials: ms/trial over the first and the last {w} "
            "trials.",
            "",
            f"| system | trials | status | first {w} | last {w} | last/first |",
            "|---|---:|---|---:|---:|---:|",
        ]
        for system, g in growth["systems"].items():
            lines.append(
                f"| {system} | {g['trials']:,} | {g['status']} | {_ms(g['first_ms'])} | "
                f"{_ms(g['last_ms'])} | {_num(g['ratio'], 2)} |"
            )
        lines.append("")
        lines += [f"- {text}: {'yes' if ok else 'no'}" for text, ok in growth["checks"].items()]
    kill = result.get("kill_check")
    if kill:
        verdict = "passed" if kill["passed"] else "FAILED"
        if not kill["exercised"]:
            verdict = "not exercised (the run ended before the kill)"
        lines += [
            "",
            f"Kill and resume ({kill['trials']:,} trials, inline): SIGKILL after "
            f"{kill['killed_after_s']:.1f} s with {kill['finished_at_kill']:,} trials finished "
            f"and {kill['unfinished_at_kill']} in flight; `--resume` reached its driver loop in "
            f"{_num(kill['resume_to_driver_start_s'])} s, its first new record in "
            f"{_num(kill['resume_to_first_new_record_s'])} s, and ended after "
            f"{kill['resume_wall_s']:.1f} s ({kill['total_wall_s']:.1f} s for both sessions): "
            f"{verdict}.",
            "",
        ]
        lines += [f"- {text}: {'yes' if ok else 'no'}" for text, ok in kill["checks"].items()]
        lines.append(f"- resume start-up under 30 s: {'yes' if kill['resume_under_30s'] else 'no'}")
    return "\n".join(lines) + "\n"


def growth_checks(systems: dict[str, dict[str, Any]], window: int) -> dict[str, bool]:
    mine, peer = systems.get("mixnas-inline"), systems.get("optuna-sqlite")
    checks = {}
    if mine and mine["ratio"] is not None:
        checks[f"mixnas-inline: last {window} at most 1.5x the first {window}"] = (
            mine["ratio"] <= 1.5
        )
    if mine and peer and mine["last_ms"] is not None and peer["last_ms"] is not None:
        checks[f"mixnas-inline's last {window} at most optuna-sqlite's last {window}"] = (
            mine["last_ms"] <= peer["last_ms"]
        )
    return checks


def _counts(text: str) -> list[int]:
    return [int(t.replace("_", "")) for t in text.split(",") if t]


def _systems(text: str) -> list[str]:
    names = [t for t in text.split(",") if t]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; known: {', '.join(SYSTEMS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=_counts, default=[100, 1000, 10000, 100000])
    parser.add_argument("--systems", type=_systems, default=list(SYSTEMS))
    parser.add_argument("--cap-seconds", type=float, default=600.0, help="wall-time cap per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, help="mixnas backend.batch (default: auto)")
    parser.add_argument("--growth", type=int, default=2000, help="trials; 0: no growth run")
    parser.add_argument("--growth-window", type=int, default=300)
    parser.add_argument("--kill-check", type=int, default=0, metavar="N", help="0: none")
    parser.add_argument(
        "--kill-reference", action="store_true", help="also compare with an uninterrupted run"
    )
    parser.add_argument("--no-resume", action="store_true", help="skip mixnas resume and report")
    parser.add_argument(
        "--no-skip-after-cap", action="store_true", help="run larger counts of a capped system"
    )
    parser.add_argument("--work-dir", type=Path, help="where runs go (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    parser.add_argument("--note", default="", help="a note on the machine's load, for the doc")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="JSON",
        help="take the cells (and growth figures) of systems not in --systems from this earlier "
        "--json, e.g. the peers' after a change to mixnas alone; the section names that run",
    )
    parser.add_argument("--out", type=Path, help="write the section into this markdown file")
    parser.add_argument("--cell", choices=SYSTEMS[len(MIXNAS_BACKENDS) :], help=argparse.SUPPRESS)
    parser.add_argument("--cell-dir", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:
        return cell_main(args)

    command = shlex.join(["python", "bench/scale.py", *(sys.argv[1:] if argv is None else argv)])
    load_start = os.getloadavg()[0]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="mixnas-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    cells: list[dict[str, Any]] = []
    for count in args.counts:
        for system in args.systems:
            earlier = None if args.no_skip_after_cap else capped_earlier(cells, system)
            if earlier is not None:
                cell = {"system": system, "count": count, "complete": False}
                cell["skipped"] = f"{earlier['status']} at {earlier['count']:,} asked"
            else:
                cell, _ = run_cell(system, count, args, work, extras=not args.no_resume)
            cells.append(cell)
            print(format_cell(cell), flush=True)

    earlier = json.loads(args.reuse.read_text()) if args.reuse else None
    if earlier is not None:
        cells = merge_cells(cells, earlier["cells"], args.systems)
    result: dict[str, Any] = {"command": command, "machine": machine(), "cells": cells}
    if earlier is not None:
        result["reused"] = {"command": earlier["command"], "load": earlier.get("load")}
    result.update(cap_seconds=args.cap_seconds, batch=args.batch, note=args.note)
    if args.growth:
        systems = {}
        for system in ("mixnas-inline", "optuna-sqlite"):
            if earlier is not None and system not in args.systems and "growth" in earlier:
                systems[system] = earlier["growth"]["systems"][system]
                continue
            cell, finished = run_cell(system, args.growth, args, work, extras=False)
            systems[system] = growth_figures(finished, args.growth_window, cell["status"])
            print(system, "growth", systems[system], flush=True)
        result["growth"] = {
            "trials": args.growth,
            "window": args.growth_window,
            "systems": systems,
            "checks": growth_checks(systems, args.growth_window),
        }
    if args.kill_check:
        result["kill_check"] = kill_check(args.kill_check, args, work)
        print("kill check", result["kill_check"], flush=True)
    result["load"] = {"start": load_start, "end": os.getloadavg()[0]}
    if args.work_dir is None and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    section = render(result)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if args.out:
        from bench.search_nb201 import write_section

        write_section(args.out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
