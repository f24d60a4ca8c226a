"""The search loop: ask the strategy, evaluate, record each finished trial, tell, checkpoint.

Durability and resume. The trial records (`mixnas.records`) are the truth: a finished trial is
committed before it is told, and then logged whole to ``events.jsonl`` (a second copy,
`mixnas.integrity`). A resume first checks the records (`mixnas.integrity.check_store`): a
store that is missing, empty or corrupt while the folder says it had trials stops the resume
with one line, before anything is written. The strategy checkpoint (`strategy.json`) is small
and bounded: the strategy's RNG state, counters and pending candidates, not its history, which
is rebuilt from the records in tell order (``seq``) on resume. A trial is keyed by the
strategy's candidate number, and a strategy restored from its checkpoint asks exactly the
candidates it asked after that checkpoint (its RNG state is in it); candidates in flight at the
checkpoint are in it too. So a resumed run hands out the in-flight candidates again and re-asks
what was asked after the checkpoint, recognises every candidate whose record is already finished
(same number, same spec id) and tells that record instead of evaluating it again, and evaluates
the rest. With one worker
(or in-driver batches) the resumed run ends with the same records as an uninterrupted one, for
deterministic evaluators. A checkpoint that cannot be read is rebuilt from the records (with a
fresh random stream, said in one line); records that hold fewer told trials than the checkpoint
are an error, never silently continued.

Scheduling. With worker processes the driver is asynchronous: a worker that finishes gets the
next candidate at once, asked with the screening thresholds of the trials told by then; with more
than one worker, which candidate a worker gets depends on timing (docs/runs.md). A run whose
evaluators are all cheap (`evaluators.Evaluator.cheap`), or one with ``workers: 0``, evaluates in
the driver's process in batches of ``backend.batch`` candidates, committed in one transaction and
checkpointed once per batch.

Nothing done per trial grows with the run: the front and the thresholds are kept up to date
incrementally (`mixnas.running`), specs of the history are loaded from the records on demand.

Analytic constraints. A config constraint on a metric the space prices analytically (params,
MACs, bytes, bit-operations, activation bytes: `search_space.spec_cost`, microseconds, no torch)
is checked when a candidate is handed out: one that breaks it is recorded at once with status
``pruned``, its analytic costs and the reason (``infeasible: params 136,558 > max 120,000``),
and told to the strategy; no evaluator runs on it.

Time budget. A trial is not started when the time left is shorter than the running median of
this session's trial durations (hand-out to finish; a batch's duration for in-driver batches):
a run stops at most one typical trial before its ``budget.seconds`` instead of overshooting it by
one. Trials already running are let finish (a trial's own limit is ``trial_timeout``).

Interrupts. Ctrl-C (SIGINT) stops the loop: worker processes ignore SIGINT (`mixnas.workers`)
and are stopped by the driver; the trials in flight stay unfinished in the records and in the
checkpoint, so ``--resume`` hands them out again, exactly as after a kill. The summary says
``stopped_by == "interrupted"``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixnas.config import ConfigError, SearchConfig, parse_config
from mixnas.integrity import check_store, reading_records
from mixnas.job import Job, prepare
from mixnas.lock import RunLock
from mixnas.manifest import (
    CHECKPOINT,
    CONFIG,
    MANIFEST,
    manifest,
    read_json,
    write_json_atomic,
)
from mixnas.pipeline import TrialOutcome, with_cost
from mixnas.progress import EventLog, Progress
from mixnas.records import DB_NAME, FAILED, PRUNED, RunStore, TrialRecord, record_event
from mixnas.running import AnalyticBounds, RunningFront, RunningQuantile, Threshold
from mixnas.workers import Done, InlineRunner, Task, WorkerPool
from search_space import paths
from search_space.errors import RunFolderError
from search_space.spec import ArchSpec
from strategies import Candidate, Observation
from strategies.base import StoredCandidate

log = logging.getLogger(__name__)
AUTO_BATCH = 64  # in-driver batch of cheap trials: one commit and one checkpoint per 64 trials
SPEC_CACHE = 4096  # specs of told trials kept parsed (parents, populations, archives)


@dataclass
class RunSummary:
    run_dir: Path
    finished: int = 0
    ok: int = 0
    failed: int = 0
    pruned: int = 0
    reused: int = 0
    seconds: float = 0.0
    front: list[int] = field(default_factory=list)
    stopped_by: str = ""
    infeasible: int = 0  # pruned before evaluation: an analytic constraint broken
    errors: Counter[str] = field(default_factory=Counter)  # failed trials per error text

    @property
    def interrupted(self) -> bool:
        return self.stopped_by == INTERRUPTED


INTERRUPTED = "interrupted"


def start_run(config: SearchConfig) -> tuple[Job, Path]:
    """Checks the config, creates the run folder and writes its config and manifest."""
    run_dir = config.run_dir
    check_runs_dir(config)
    if any((run_dir / name).exists() for name in (DB_NAME, CONFIG, CHECKPOINT)):
        raise ConfigError(
            "name",
            f"run folder {run_dir} already holds a run; continue it with "
            f"'mixnas search --resume {run_dir}' or choose another --name",
            source=config.source,
            value=config.name,
        )
    job = prepare(config)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            "runs_dir",
            f"the run folder {run_dir} cannot be created: {err.strerror or err}",
            source=config.source,
            value=config.runs_dir,
        ) from None
    write_json_atomic(run_dir / CONFIG, config.to_dict())
    write_json_atomic(
        run_dir / MANIFEST,
        manifest(config.to_dict(), job.space_hash, backend=config.backend.name),
    )
    return job, run_dir


def check_runs_dir(config: SearchConfig) -> None:
    """The run folder can be created and written: its nearest existing ancestor is a folder
    this process may write into (``runs_dir: /proc/nope`` is one line, before any work)."""
    run_dir = config.run_dir.absolute()
    existing = next((p for p in (run_dir, *run_dir.parents) if paths.exists(p)), None)
    problem = ""
    if existing is None or not paths.is_dir(existing):
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    if problem:
        raise ConfigError(
            "runs_dir",
            f"the run folder {config.run_dir} cannot be created: {problem}",
            source=config.source,
            value=config.runs_dir,
        )


def resume_config(run_dir: Path, **overrides: Any) -> SearchConfig:
    """The config a run folder was started with, with CLI overrides applied."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise ConfigError(
            "--resume", "not a mixnas run folder (no config.json)", value=str(run_dir)
        )
    config = parse_config(read_json(path), source=str(path))
    # the folder may have been moved: the run folder is where it is now
    config = config.with_overrides(runs_dir=str(run_dir.parent), name=run_dir.name)
    return config.with_overrides(**overrides)


def run_search(config: SearchConfig, *, resume: bool = False, quiet: bool = True) -> RunSummary:
    """Runs (or resumes) a search to its budget with the local backend; see the module doc."""
    return run_with(LocalDriver, config, resume=resume, quiet=quiet)


def run_with(
    driver: type[LocalDriver], config: SearchConfig, *, resume: bool, quiet: bool
) -> RunSummary:
    """Opens the run folder, runs ``driver`` to the budget, keeps the lookup tables it used."""
    job, run_dir = open_run(config, resume=resume)
    with RunLock(run_dir), RunStore(run_dir) as store, reading_records(run_dir):
        summary = driver(job, run_dir, store, quiet=quiet).run()
    keep_lookup_tables(job, run_dir)
    return summary


def keep_lookup_tables(job: Job, run_dir: Path) -> list[Path]:
    """Copies the latency lookup tables the run's predictors used into ``lookup_tables/``, so
    that the run folder says which op timings its predictions came from."""
    import shutil

    devices = {
        str(c.options.get("device", "host"))
        for c in job.config.evaluators
        if c.name == "predicted_latency"
    }
    if not devices:
        return []
    from predictors.table import default_cache_dir

    copied = []
    for device in sorted(devices):
        for table in sorted(default_cache_dir().glob(f"{device}-*.lut.json")):
            target = run_dir / "lookup_tables" / table.name
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(table, target)
            copied.append(target)
    return copied


def open_run(config: SearchConfig, *, resume: bool) -> tuple[Job, Path]:
    """Checks the config and opens its run folder: a new one, or the one being resumed."""
    if not resume:
        return start_run(config)
    # the records are checked, never replaced: a damaged store stops here, nothing written
    check_store(config.run_dir)
    job = prepare(config)
    _note_resume(config.run_dir)
    return job, config.run_dir


def _note_resume(run_dir: Path) -> None:
    path = run_dir / MANIFEST
    data = read_json(path) if path.is_file() else {}
    if not isinstance(data, dict) or not isinstance(data.get("resumed", []), list):
        # never written over: it says what produced the run (see mixnas doctor)
        raise RunFolderError(f"{path}: is not a mixnas manifest; see 'mixnas doctor {run_dir}'")
    data.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_json_atomic(path, data)


class SpecCache:
    """Specs of told trials, parsed from the records when a strategy looks at them; the most
    recently used are kept (a strategy's parents and archive), so memory stays bounded."""

    def __init__(self, store: RunStore, size: int = SPEC_CACHE) -> None:
        self.store = store
        self.size = size
        self._specs: OrderedDict[int, ArchSpec] = OrderedDict()

    def __call__(self, trial_id: int) -> ArchSpec:
        spec = self._specs.get(trial_id)
        if spec is None:
            spec = ArchSpec.from_dict(self.store.spec(trial_id))
        self.keep(trial_id, spec)
        return spec

    def keep(self, trial_id: int, spec: ArchSpec) -> None:
        self._specs[trial_id] = spec
        self._specs.move_to_end(trial_id)
        if len(self._specs) > self.size:
            self._specs.popitem(last=False)

    def candidate(self, cand: Candidate) -> StoredCandidate:
        """``cand`` as the strategy's history keeps it once its record is committed."""
        self.keep(cand.number, cand.spec)
        return StoredCandidate(cand.number, cand.origin, cand.spec.id, self)


class LocalDriver:
    """The ask-evaluate-record-tell loop over local worker processes or in-driver batches."""

    def __init__(self, job: Job, run_dir: Path, store: RunStore, *, quiet: bool) -> None:
        self.job = job
        self.config = job.config
        self.run_dir = run_dir
        self.store = store
        self.quiet = quiet
        self.strategy = job.strategy()
        self.specs = SpecCache(store)
        self.elapsed_before = 0.0
        self.rules = {
            i: Threshold(cfg.promote)
            for i, cfg in enumerate(with_cost(self.config.evaluators))
            if cfg.promote is not None
        }
        self.front = RunningFront(self.config.objectives, self.config.constraints)
        self.notes: list[str] = []  # what the restore had to say (events log and console)
        self.events: EventLog | None = None  # open while the run is on
        self.progress: Progress | None = None  # the live bar, while the run is on
        # config constraints the space prices analytically: checked before any evaluator runs
        self.analytic_bounds = AnalyticBounds(self.config.constraints)
        self.durations = RunningQuantile(0.5)  # this session's trial durations (time budget)
        self._restore()
        # candidates asked but not told when the run stopped (in flight at a kill): handed out
        # again, in order, before anything new is asked
        self.unfinished = sorted(self.strategy.pending.values(), key=lambda c: c.number)

    # -- restore -----------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Loads the checkpoint and the history from the records (see the module docstring);
        a checkpoint or history the strategy refuses is one line naming the run folder."""
        try:
            self._load()
        except (ValueError, RuntimeError, KeyError, TypeError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(
                "--resume",
                f"the strategy cannot be restored from {CHECKPOINT} and the records "
                f"({type(err).__name__}: {err}); its records stay readable (mixnas report); "
                "continue the search in a new run",
                value=str(self.run_dir),
            ) from None
        for obs in self.strategy.history:
            self._account(obs.candidate.number, obs.status, obs.metrics)

    def _load(self) -> None:
        path = self.run_dir / CHECKPOINT
        state = self._read_checkpoint(path) if path.is_file() else None
        if state is None and path.is_file():
            self._rebuild()
        elif state is not None:
            try:
                self._load_checkpoint(state, path)
            except (ValueError, TypeError, KeyError, OverflowError, IndexError) as err:
                if isinstance(err, ConfigError):
                    raise
                # a checkpoint that reads as JSON but holds values the strategy refuses is
                # damaged like one of random bytes: rebuilt from the records, said in one line
                self.notes.append(
                    f"{path} could not be used ({type(err).__name__}: "
                    f"{' '.join(str(err).split())[:200]})"
                )
                self.strategy = self.job.strategy()
                self.elapsed_before = 0.0
                self._rebuild()

    def _load_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        strategy_state = state["strategy"]
        elapsed = float(state.get("elapsed", 0.0))
        if not math.isfinite(elapsed) or elapsed < 0:
            raise ValueError(f"elapsed is {elapsed}")
        if "history" in strategy_state:  # a checkpoint of mixnas < 0.2 holds the history
            self.strategy.load_state_dict(strategy_state)
        else:
            told = int(strategy_state["told"])
            history = self._history(limit=told)
            if len(history) < told:
                raise ConfigError(
                    "--resume",
                    f"{self.store.path} holds {len(history)} finished trials but "
                    f"{path.name} has told {told}: the records were damaged or replaced; "
                    "restore them from a backup or start a new run",
                    value=str(self.run_dir),
                )
            self.strategy.restore(strategy_state, history)
        self.elapsed_before = elapsed

    def _read_checkpoint(self, path: Path) -> dict[str, Any] | None:
        try:
            state = read_json(path)
            if not isinstance(state, dict) or not isinstance(state.get("strategy"), dict):
                raise ValueError("not a strategy checkpoint")
            return state
        except (OSError, UnicodeDecodeError, ValueError) as err:
            text = str(err).removeprefix(f"{path}: ")  # a RunFolderError names the file
            reason = text if isinstance(err, RunFolderError) else f"{type(err).__name__}: {err}"
            self.notes.append(f"{path} could not be read ({reason})")
            return None

    def _rebuild(self) -> None:
        """A strategy from the records alone: every finished trial told in tell order, the
        unfinished ones pending again, and a random stream seeded from the seed and the count
        (the original stream is lost with the checkpoint)."""
        history = self._history(limit=None)
        unfinished = self.store.unfinished()
        state = self.strategy.checkpoint_state()
        state.update(
            told=len(history),
            asked=self.store.max_trial_id() + 1,
            pending=[
                {"spec": r.spec, "number": r.trial_id, "origin": r.origin} for r in unfinished
            ],
            initial=[],
        )
        import numpy as np

        state["rng"] = np.random.default_rng([self.config.seed, len(history)]).bit_generator.state
        self.strategy.restore(state, history)
        note = (
            f"rebuilt the strategy from {len(history)} finished trial(s) in {self.store.path.name}"
            f" ({len(unfinished)} unfinished asked again); the run goes on with a new random "
            "stream"
        )
        self.notes.append(note)
        log.warning("%s: %s", self.run_dir, "; ".join(self.notes))

    def _history(self, limit: int | None) -> list[Observation]:
        return [
            Observation(
                StoredCandidate(t.trial_id, t.origin, t.spec_id, self.specs),
                finite(t.metrics),
                t.status,
            )
            for t in self.store.told(limit)
        ]

    def _account(self, trial_id: int, status: str, metrics: Any) -> None:
        """Keeps the front and the screening thresholds up to date with one told trial."""
        for threshold in self.rules.values():
            threshold.add(metrics)
        self.front.add(_Told(trial_id, status, metrics))

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        summary = RunSummary(self.run_dir)
        start = time.monotonic()
        events = self.events = EventLog(self.run_dir)
        for note in self.notes:
            events.emit("note", text=note)
        told = len(self.strategy.history)
        progress = self.new_progress()
        try:
            with self._runner() as runner:
                events.emit("start", told=told, budget=self.config.trials, capacity=runner.capacity)
                while True:
                    if not summary.stopped_by:
                        summary.stopped_by = self._fill(runner, summary, progress, events, start)
                    if not runner.busy:
                        break
                    self._finish(runner.collect(), summary, progress, events, start)
        except KeyboardInterrupt:
            # the runner is closed (its workers stopped) by now; what finished is committed and
            # what was in flight is unfinished in the records: a resume runs it again
            summary.stopped_by = INTERRUPTED
        finally:
            progress.close()
            summary.seconds = time.monotonic() - start
            events.emit("stop", reason=summary.stopped_by, seconds=round(summary.seconds, 3))
            events.close()
        summary.front = sorted(self.front.trial_ids)
        return summary

    def new_progress(self) -> Progress:
        """The live bar, counting from the run's told trials: done, failed, pruned and the
        best values are the run's, not this session's, on a resume."""
        history = self.strategy.history
        self.progress = Progress(
            self.config.trials, self.config.objectives, quiet=self.quiet, initial=len(history)
        )
        self.progress.seed((obs.status, obs.metrics) for obs in history)
        return self.progress

    def _runner(self) -> Any:
        cfg = self.config
        batch = self.batch_size()
        if batch > 1 or cfg.backend.workers == 0:
            return InlineRunner(cfg.evaluators, seed=cfg.seed, batch=batch)
        threads = cfg.backend.threads_per_worker or max(
            1, (os.cpu_count() or 1) // cfg.backend.workers
        )
        return WorkerPool(
            cfg.backend.workers,
            cfg.evaluators,
            seed=cfg.seed,
            threads=threads,
            timeout=cfg.trial_timeout,
        )

    def batch_size(self) -> int:
        """Candidates per in-driver batch: the config's ``backend.batch``, else `AUTO_BATCH` when
        every evaluator is cheap, else 1 (one trial at a time, in worker processes)."""
        if self.config.backend.batch is not None:
            return self.config.backend.batch
        return AUTO_BATCH if self.job.cheap else 1

    def _stop_reason(self, start: float, in_flight: int = 0) -> str:
        cfg = self.config
        if cfg.trials is not None and len(self.strategy.history) + in_flight >= cfg.trials:
            return "trial budget"
        elapsed = self.elapsed_before + time.monotonic() - start
        if cfg.seconds is not None:
            left = cfg.seconds - elapsed
            if left <= 0:
                return "time budget"
            # a trial started now would end past the budget: stop one typical trial early
            # rather than overshoot by one (see the module docstring)
            if self.durations.n and self.durations.value() > left:
                typical = self.durations.value()
                return f"time budget ({left:.1f} s left, a trial takes about {typical:.1f} s)"
        return ""

    def _fill(
        self, runner: Any, summary: RunSummary, progress: Progress, events: EventLog, start: float
    ) -> str:
        """Hands candidates to the runner until it is full; returns why asking stopped, if it
        did ("" while the budget lasts)."""
        while runner.busy < runner.capacity:
            stop = self._stop_reason(start, runner.busy)
            if stop:
                return stop
            tasks = self._hand_out(
                runner.capacity - runner.busy, runner.busy, summary, progress, start
            )
            if tasks is None:
                return "space exhausted"
            for task in tasks:
                runner.submit(task)
        return ""

    def _hand_out(
        self,
        want: int,
        in_flight: int,
        summary: RunSummary,
        progress: Progress | None,
        start: float,
    ) -> list[Task] | None:
        """Up to ``want`` candidates to evaluate, within the trial budget: those in flight at
        the last stop first, then new asks, each marked running in the records. A candidate
        whose record finished before a kill is told instead, never run twice. None when the
        strategy has nothing left to propose."""
        if self.config.trials is not None:
            want = min(want, self.config.trials - len(self.strategy.history) - in_flight)
        batch = [self.unfinished.pop(0) for _ in range(min(want, len(self.unfinished)))]
        if len(batch) < want:
            batch += self.strategy.ask(want - len(batch))
        if not batch:
            return None
        thresholds, handed_out = self.thresholds(), time.time()
        reused: list[tuple[Candidate, TrialRecord]] = []
        infeasible: list[tuple[Candidate, TrialRecord]] = []
        tasks: list[Task] = []
        with self.store.transaction():
            for cand in batch:
                done = self.store.get(cand.number)
                if done is not None and done.done and done.spec_id == cand.spec.id:
                    reused.append((cand, done))
                    continue
                spec = cand.spec.to_dict()
                self.store.start(cand.number, cand.spec.id, cand.origin, spec)
                pruned = self._infeasible(cand, spec, handed_out)
                if pruned is not None:
                    infeasible.append((cand, pruned))
                    continue
                tasks.append(Task(cand.number, spec, thresholds, cand, handed_out))
            # committed after every reused record: their seq (tell order) is older
            stored = self.store.finish_many(record for _, record in infeasible)
        # in the order they were committed, which is the order they are in the history
        reused.sort(key=lambda item: item[1].seq if item[1].seq is not None else -1)
        for cand, record in reused:
            summary.reused += 1
            if self.events is not None:
                # committed just before a kill, its 'trial' event may have been lost with the
                # driver's buffer: logged again, so that the log holds every finished trial
                self.events.emit("reused", **record_event(record), flush=False)
            self._tell(cand, record, summary, progress)
        for (cand, _), record in zip(infeasible, stored, strict=True):
            summary.infeasible += 1
            if self.events is not None:
                self.events.emit("trial", **record_event(record), flush=False)
            self._tell(cand, record, summary, progress)
        if reused or infeasible:
            if self.events is not None:
                self.events.flush()  # logged before the checkpoint says they were told
            self._checkpoint(start)
        return tasks

    def _infeasible(
        self, cand: Candidate, spec: dict[str, Any], started: float
    ) -> TrialRecord | None:
        """The pruned record of a candidate that breaks an analytic constraint of the config
        (None when it meets them all, or there are none): its analytic costs, the reason."""
        if not self.analytic_bounds:
            return None
        tick = time.perf_counter()
        costs, broken = self.analytic_bounds.check(cand.spec)
        if not broken:
            return None
        return TrialRecord(
            trial_id=cand.number,
            spec_id=cand.spec.id,
            origin=cand.origin,
            status=PRUNED,
            spec=spec,
            metrics=costs,
            timings={"cost": time.perf_counter() - tick},
            stages=("cost",),
            error=f"infeasible: {'; '.join(broken)} (config constraints; not evaluated)",
            started=started,
            worker="driver",
        )

    def thresholds(self) -> dict[int, float | None]:
        return {i: threshold.value() for i, threshold in self.rules.items()}

    def _finish(
        self,
        done: list[Done],
        summary: RunSummary,
        progress: Progress,
        events: EventLog,
        start: float,
    ) -> None:
        """Commits what ended (one transaction), tells it in that order, checkpoints once."""
        if not done:
            return
        now = time.time()
        for task, _, _ in done:
            self.durations.add(max(0.0, now - task.submitted))
        records = self.store.finish_many(
            self._record(task, outcome, worker) for task, outcome, worker in done
        )
        for (task, _, _), record in zip(done, records, strict=True):
            # the whole record (spec included): `mixnas doctor --repair` rebuilds from the log
            events.emit("trial", **record_event(record), flush=False)
            self._tell(task.candidate, record, summary, progress)
        events.flush()
        self._checkpoint(start)

    def _record(self, task: Task, outcome: TrialOutcome, worker: str) -> TrialRecord:
        cand = task.candidate
        return TrialRecord(
            trial_id=cand.number,
            spec_id=cand.spec.id,
            origin=cand.origin,
            status=outcome.status,
            spec=task.spec,
            metrics=outcome.metrics,
            timings=outcome.timings,
            stages=outcome.stages,
            error=outcome.error,
            started=task.submitted,
            worker=worker,
        )

    def _tell(
        self, cand: Candidate, record: TrialRecord, summary: RunSummary, progress: Progress | None
    ) -> None:
        metrics = finite(record.metrics)
        self.strategy.tell([Observation(self.specs.candidate(cand), metrics, record.status)])
        self._account(record.trial_id, record.status, metrics)
        summary.finished += 1
        summary.ok += record.status == "ok"
        summary.failed += record.status == FAILED
        summary.pruned += record.status == PRUNED
        if record.status == FAILED:
            summary.errors[record.error or "(no error text)"] += 1
        if progress is not None:
            progress.update(record, len(self.front))

    def _checkpoint(self, start: float) -> None:
        write_json_atomic(
            self.run_dir / CHECKPOINT,
            {
                "strategy": self.strategy.checkpoint_state(),
                "told": len(self.strategy.history),
                "elapsed": self.elapsed_before + time.monotonic() - start,
            },
        )


@dataclass(frozen=True)
class _Told:
    trial_id: int
    status: str
    metrics: Any


def finite(metrics: Any) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
