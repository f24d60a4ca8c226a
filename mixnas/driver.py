"""The search loop: ask the strategy, evaluate, record each finished trial, tell, checkpoint.

Durability and resume. The trial records (`mixnas.records`) are the truth; the strategy
checkpoint is written after every `tell`. A trial is keyed by the strategy's candidate number, and
a strategy restored from its checkpoint asks exactly the candidates it asked after that checkpoint
(its RNG state is in it). So a resumed run re-asks the batch that was in flight when the run was
killed, recognises every candidate whose record is already finished (same number, same spec id)
and reuses that record instead of evaluating again, and evaluates the rest. Whether the kill came
during an evaluation, between a record and the `tell`, or while the checkpoint was written (it is
replaced atomically), the resumed run ends with the same records as an uninterrupted one, for
deterministic evaluators.

Batches are synchronous: the driver asks ``workers`` candidates, evaluates them in parallel, and
tells them in candidate order, so that the sequence of asks, and with it the records, does not
depend on which worker finishes first. Screening thresholds (`mixnas.pipeline`) come from the
trials told before the batch was asked, for the same reason.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixnas.config import ConfigError, SearchConfig, parse_config
from mixnas.front import front
from mixnas.job import Job, prepare
from mixnas.manifest import (
    CHECKPOINT,
    CONFIG,
    MANIFEST,
    manifest,
    read_json,
    write_json_atomic,
)
from mixnas.pipeline import TrialOutcome, promotion_threshold, with_cost
from mixnas.progress import EventLog, Progress
from mixnas.records import DB_NAME, RunStore, TrialRecord
from mixnas.workers import InlineRunner, Task, WorkerPool
from strategies import Candidate, Observation


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


def start_run(config: SearchConfig) -> tuple[Job, Path]:
    """Checks the config, creates the run folder and writes its config and manifest."""
    job = prepare(config)
    run_dir = config.run_dir
    if (run_dir / DB_NAME).exists():
        raise ConfigError(
            "name",
            f"run folder {run_dir} already holds a run; continue it with "
            f"'mixnas search --resume {run_dir}' or choose another --name",
            source=config.source,
            value=config.name,
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / CONFIG, config.to_dict())
    write_json_atomic(
        run_dir / MANIFEST,
        manifest(config.to_dict(), job.space_hash, backend=config.backend.name),
    )
    return job, run_dir


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
    with RunStore(run_dir) as store:
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
    job = prepare(config)
    _note_resume(config.run_dir)
    return job, config.run_dir


def _note_resume(run_dir: Path) -> None:
    path = run_dir / MANIFEST
    data = read_json(path) if path.is_file() else {}
    data.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_json_atomic(path, data)


class LocalDriver:
    """The ask-evaluate-record-tell loop over local worker processes."""

    def __init__(self, job: Job, run_dir: Path, store: RunStore, *, quiet: bool) -> None:
        self.job = job
        self.config = job.config
        self.run_dir = run_dir
        self.store = store
        self.quiet = quiet
        self.strategy = job.strategy()
        self.elapsed_before = 0.0
        checkpoint = run_dir / CHECKPOINT
        if checkpoint.is_file():
            state = read_json(checkpoint)
            self.strategy.load_state_dict(state["strategy"])
            self.elapsed_before = float(state.get("elapsed", 0.0))
        self.rules = {
            i: cfg.promote
            for i, cfg in enumerate(with_cost(self.config.evaluators))
            if cfg.promote is not None
        }

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        cfg = self.config
        summary = RunSummary(self.run_dir)
        start = time.monotonic()
        events = EventLog(self.run_dir)
        events.emit("start", told=len(self.strategy.history), budget=cfg.trials)
        progress = Progress(
            cfg.trials, cfg.objectives, quiet=self.quiet, initial=len(self.strategy.history)
        )
        self._front_size = len(front(self.store.records(), cfg.objectives, cfg.constraints))
        try:
            with self._runner() as runner:
                while True:
                    stop = self._stop_reason(start)
                    if stop:
                        summary.stopped_by = stop
                        break
                    batch = self.strategy.ask(self._batch_size())
                    if not batch:
                        summary.stopped_by = "space exhausted"
                        break
                    self._run_batch(batch, runner, summary, progress, events)
                    self._checkpoint(start)
        finally:
            progress.close()
            summary.seconds = time.monotonic() - start
            events.emit("stop", reason=summary.stopped_by, seconds=round(summary.seconds, 3))
            events.close()
        records = self.store.records()
        summary.front = [r.trial_id for r in front(records, cfg.objectives, cfg.constraints)]
        return summary

    def _runner(self) -> Any:
        cfg = self.config
        if cfg.backend.workers == 0:
            return InlineRunner(cfg.evaluators, seed=cfg.seed)
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

    def _stop_reason(self, start: float) -> str:
        cfg = self.config
        if cfg.trials is not None and len(self.strategy.history) >= cfg.trials:
            return "trial budget"
        elapsed = self.elapsed_before + time.monotonic() - start
        if cfg.seconds is not None and elapsed >= cfg.seconds:
            return "time budget"
        return ""

    def _batch_size(self) -> int:
        n = max(1, self.config.backend.workers)
        if self.config.trials is not None:
            n = min(n, self.config.trials - len(self.strategy.history))
        return n

    def thresholds(self) -> dict[int, float | None]:
        earlier = [o.metrics for o in self.strategy.history]
        return {i: promotion_threshold(rule, earlier) for i, rule in self.rules.items()}

    def _run_batch(
        self,
        batch: list[Candidate],
        runner: Any,
        summary: RunSummary,
        progress: Progress,
        events: EventLog,
    ) -> None:
        thresholds = self.thresholds()
        results: dict[int, TrialRecord] = {}
        tasks = []
        for cand in batch:
            done = self.store.get(cand.number)
            if done is not None and done.done and done.spec_id == cand.spec.id:
                results[cand.number] = done  # finished before a kill: never evaluated twice
                summary.reused += 1
                continue
            self.store.start(cand.number, cand.spec.id, cand.origin, cand.spec.to_dict())
            tasks.append(Task(cand.number, cand.spec.to_dict(), thresholds))
        origins = {c.number: c for c in batch}

        def on_done(task: Task, outcome: TrialOutcome, worker: str) -> None:
            previous = self.store.get(task.trial_id)
            started = previous.started if previous is not None else None
            cand = origins[task.trial_id]
            results[task.trial_id] = self.record(cand, outcome, worker, started, events)

        runner.run(tasks, on_done)
        for cand in sorted(batch, key=lambda c: c.number):
            record = results[cand.number]
            self.strategy.tell([Observation(cand, finite(record.metrics), record.status)])
            summary.finished += 1
            summary.ok += record.status == "ok"
            summary.failed += record.status == "failed"
            summary.pruned += record.status == "pruned"
            if record.status == "ok":
                self._front_size = len(
                    front(self.store.records(), self.config.objectives, self.config.constraints)
                )
            progress.update(record, self._front_size)

    def record(
        self,
        cand: Candidate,
        outcome: TrialOutcome,
        worker: str,
        started: float | None,
        events: EventLog | None,
    ) -> TrialRecord:
        """Commits a finished trial to the records and the event log; returns it as stored."""
        record = TrialRecord(
            trial_id=cand.number,
            spec_id=cand.spec.id,
            origin=cand.origin,
            status=outcome.status,
            spec=cand.spec.to_dict(),
            metrics=outcome.metrics,
            timings=outcome.timings,
            stages=outcome.stages,
            error=outcome.error,
            started=started,
            worker=worker,
        )
        self.store.finish(record)
        if events is not None:
            events.emit(
                "trial",
                trial_id=cand.number,
                spec_id=cand.spec.id,
                status=outcome.status,
                error=outcome.error,
                metrics=finite(outcome.metrics),
                worker=worker,
            )
        return self.store.get(cand.number) or record

    def _checkpoint(self, start: float) -> None:
        write_json_atomic(
            self.run_dir / CHECKPOINT,
            {
                "strategy": self.strategy.state_dict(),
                "told": len(self.strategy.history),
                "elapsed": self.elapsed_before + time.monotonic() - start,
            },
        )


def finite(metrics: Any) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}
