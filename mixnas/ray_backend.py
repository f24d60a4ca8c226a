"""``--backend ray``: the same search, with trials run as Ray Tune trials.

A `StrategySearcher` (a Ray Tune `Searcher`) wraps the mixnas strategy: Tune asks it for a
config, it asks the strategy for a candidate; Tune reports a trial's end, it records the trial and
tells the strategy. The searcher lives in the driver, so the driver stays the only writer of the
records and the checkpoint, exactly as with the local backend (same files, same format, same
resume). Trials run anywhere in the cluster (`ray.init(address=...)` joins an existing one; without
an address a local Ray starts), each with the resources the config asks for.

A trial's evaluation runs in a thread of the Ray worker; past the time limit, the trial reports a
failed outcome and raises, so Ray tears the worker down (and the stuck computation with it). A
trial that crashes or whose node is lost is recorded as failed; the run goes on.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from mixnas.config import SearchConfig, evaluator_to_dict
from mixnas.driver import INTERRUPTED, LocalDriver, RunSummary, run_with
from mixnas.pipeline import TrialOutcome, TrialPipeline, failed
from mixnas.progress import EventLog, Progress
from mixnas.records import RunStore
from mixnas.workers import Task
from search_space.spec import ArchSpec

_PIPELINES: dict[str, TrialPipeline] = {}  # per Ray worker process, when actors are reused
# Tune pickles its search algorithm with the experiment state; the searcher therefore holds a
# key into this table of the driver process's live drivers, not the driver (records, strategy).
_LIVE_DRIVERS: dict[int, RayDriver] = {}


def _pipeline(configs: list[dict[str, Any]], seed: int) -> TrialPipeline:
    from mixnas.config import parse_config

    key = json.dumps([configs, seed], sort_keys=True, default=str)
    if key not in _PIPELINES:
        # rebuild EvaluatorConfig objects through the config parser (one checked path)
        parsed = parse_config({"objectives": ["params"], "evaluators": configs})
        _PIPELINES[key] = TrialPipeline(parsed.evaluators, seed=seed)
    return _PIPELINES[key]


def evaluate_trial(config: dict[str, Any]) -> None:
    """The Ray Tune trainable: evaluates one candidate, or a batch of cheap ones, and reports
    their outcomes as a JSON list."""
    from ray import tune

    threads = int(config.get("threads", 1))
    from mixnas.workers import set_threads

    set_threads(threads)
    import ray

    box: dict[str, Any] = {}
    specs = ray.get(config["specs"][0])  # see RayDriver.suggest: the specs travel by reference

    def work() -> None:
        try:
            pipeline = _pipeline(config["evaluators"], int(config["seed"]))
            thresholds = {int(k): v for k, v in config["thresholds"].items()}
            box["outcomes"] = pipeline.run_many(
                [ArchSpec.from_dict(spec) for spec in specs],
                thresholds,
                lambda partial: box.__setitem__("partial", partial),
            )
        except Exception as exc:
            box["outcomes"] = [failed(f"{type(exc).__name__}: {exc}")] * len(specs)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    timeout = config.get("timeout")
    # the time limit is per candidate; a batch of cheap ones gets the sum
    thread.join(None if timeout is None else float(timeout) * len(specs))
    if timeout is not None and thread.is_alive():
        outcome = failed(f"timed out after {float(timeout):g} s", box.get("partial"))
        tune.report({"outcomes": _outcomes_json([outcome] * len(specs)), "node": _node()})
        raise TimeoutError(outcome.error)  # Ray stops this worker, and the stuck thread with it
    tune.report({"outcomes": _outcomes_json(box["outcomes"]), "node": _node()})


def _outcomes_json(outcomes: list[TrialOutcome]) -> str:
    return json.dumps([o.to_dict() for o in outcomes])


def _node() -> str:
    """Where the trial ran: Ray node id (short), host and process."""
    import socket

    import ray

    node = ray.get_runtime_context().get_node_id()[:12]
    return f"ray-node-{node}@{socket.gethostname()}:{os.getpid()}"


class StrategySearcher(Searcher):
    """Ray Tune's view of a mixnas strategy (see the module docstring)."""

    def __init__(self, driver: RayDriver) -> None:
        super().__init__(metric=None, mode=None)
        self.key = id(driver)
        _LIVE_DRIVERS[self.key] = driver

    @property
    def driver(self) -> RayDriver:
        return _LIVE_DRIVERS[self.key]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        return self.driver.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.driver.remember(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.driver.complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save here: the driver checkpoints the strategy after every tell, next to
        the records, and ``mixnas search --resume`` restores from there (not from Tune's
        experiment state)."""

    def restore(self, checkpoint_path: str) -> None:
        """See `save`."""


class RayDriver(LocalDriver):
    """The local driver's bookkeeping, fed by Ray Tune's searcher callbacks."""

    def __init__(self, job: Any, run_dir: Path, store: RunStore, *, quiet: bool) -> None:
        super().__init__(job, run_dir, store, quiet=quiet)
        self.in_flight: dict[str, list[Task]] = {}  # Tune trial id -> the candidates it runs
        self.last_result: dict[str, dict[str, Any]] = {}
        self.summary = RunSummary(run_dir)
        self.events: EventLog | None = None
        self.progress: Progress | None = None
        self.start = time.monotonic()
        # plain data for Ray, rebuilt into a pipeline in each Ray worker
        self.evaluator_dicts = [evaluator_to_dict(c) for c in self.config.evaluators]

    # -- searcher callbacks ----------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """A Tune trial's config: one candidate, or up to `batch_size` when every evaluator is
        cheap (one Tune trial per candidate would cost far more than the evaluation)."""
        cfg = self.config
        while True:
            flying = sum(len(tasks) for tasks in self.in_flight.values())
            stop = self._stop_reason(self.start, flying)
            if stop:
                self.summary.stopped_by = stop
                # Ray documents FINISHED (a str) as suggest's answer but types it Optional[Dict]
                return Searcher.FINISHED if not self.in_flight else None  # type: ignore[return-value]
            tasks = self._hand_out(
                self.batch_size(), flying, self.summary, self.progress, self.start
            )
            if tasks is None:
                self.summary.stopped_by = "space exhausted"
                # Ray documents FINISHED (a str) as suggest's answer but types it Optional[Dict]
                return Searcher.FINISHED if not self.in_flight else None  # type: ignore[return-value]
            if not tasks:
                continue  # all of them had finished before a kill: told, ask again
            self.in_flight[trial_id] = tasks
            import ray

            return {
                "trial_numbers": [t.trial_id for t in tasks],
                # by reference in Ray's object store, not by value in the config: Tune keeps
                # every trial's config in its experiment state and rewrites that file as the
                # run goes (85 MB after 3,000 cheap trials with the specs in it)
                "specs": [ray.put([t.spec for t in tasks])],
                "thresholds": {str(k): v for k, v in tasks[0].thresholds.items()},
                "evaluators": self.evaluator_dicts,
                "seed": cfg.seed,
                "timeout": cfg.trial_timeout,
                "threads": max(1, int(cfg.backend.cpus_per_trial)),
            }

    def remember(self, trial_id: str, result: dict[str, Any]) -> None:
        self.last_result[trial_id] = result

    def complete(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        if trial_id not in self.in_flight:
            return
        tasks = self.in_flight.pop(trial_id)
        result = result or self.last_result.pop(trial_id, None)
        if result is not None and "outcomes" in result:
            outcomes = [TrialOutcome.from_dict(o) for o in json.loads(result["outcomes"])]
            worker = str(result.get("node", "ray"))
        else:
            reason = "the trial errored (a crash or a lost node); Ray's trial log has the details"
            outcomes = [failed(reason)] * len(tasks)
            worker = "ray"
        assert self.events is not None
        done = [(task, outcome, worker) for task, outcome in zip(tasks, outcomes, strict=True)]
        self._finish(done, self.summary, self._progress(), self.events, self.start)

    def _progress(self) -> Progress:
        assert self.progress is not None, "the searcher is called only while the run is on"
        return self.progress

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        import ray
        from ray import tune

        cfg = self.config
        self.events = EventLog(self.run_dir)
        self.progress = self.new_progress()
        self.events.emit("start", backend="ray", address=cfg.backend.address)
        if self.quiet:
            # Tune's console layout prints a configuration table even at verbose=0
            os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Tune's own loggers write every result with the trial's config (the specs) to JSON, CSV
        # and TensorBoard files per trial: 2 GB at 54,000 cheap trials, all of it already in the
        # records; they are off unless the user turned them on
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        started_ray = not ray.is_initialized()
        if started_ray:
            ray.init(
                address=cfg.backend.address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        try:
            remaining = None if cfg.trials is None else cfg.trials - len(self.strategy.history)
            resources = {"cpu": cfg.backend.cpus_per_trial}
            if cfg.backend.gpus_per_trial > 0:  # a fraction shares one GPU between trials
                resources["gpu"] = cfg.backend.gpus_per_trial
            trainable = tune.with_resources(evaluate_trial, resources)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=StrategySearcher(self),
                    # batches: as many Tune trials as it takes; the searcher says when it is done
                    num_samples=-1
                    if remaining is None or self.batch_size() > 1
                    else max(remaining, 1),
                    max_concurrent_trials=max(1, cfg.backend.workers),
                    # keep a worker (and its imported torch, built evaluators) across trials
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name="tune",
                    storage_path=str((self.run_dir / "ray").resolve()),
                    verbose=0,
                ),
            )
            if remaining is None or remaining > 0:
                tuner.fit()
        finally:
            _LIVE_DRIVERS.pop(id(self), None)
            self.progress.close()
            self.summary.seconds = time.monotonic() - self.start
            self.events.emit("stop", reason=self.summary.stopped_by)
            self.events.close()
            if started_ray:
                ray.shutdown()
        if not self.summary.stopped_by:
            # Tune ends a run on Ctrl-C by itself (its own SIGINT handler) and returns: a run
            # that stopped with its budget left was interrupted (`--resume` continues it)
            self.summary.stopped_by = self._stop_reason(self.start) or INTERRUPTED
        self.summary.front = sorted(self.front.trial_ids)
        return self.summary


def run_search_ray(config: SearchConfig, *, resume: bool = False, quiet: bool = True) -> RunSummary:
    """Runs (or resumes) a search with Ray Tune executing the trials."""
    return run_with(RayDriver, config, resume=resume, quiet=quiet)
