"""Local evaluation workers: processes that run `TrialPipeline`s, with a time limit per trial.

Why processes: a torch computation cannot be interrupted from another thread, so the only sure way
to stop a trial past its time limit (or one that hangs, or crashes the interpreter) is to kill the
process that runs it. Each worker is a spawned process (no fork: torch and its thread pools are not
fork-safe) that builds its evaluators once and then evaluates trial after trial; a worker killed
for a timeout, or one that died, is replaced by a fresh one and the trial is recorded as failed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from mixnas.config import EvaluatorConfig
from mixnas.pipeline import TrialOutcome, TrialPipeline, failed
from search_space.spec import ArchSpec

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Task:
    """One trial to evaluate: its number, spec (plain data) and screening thresholds."""

    trial_id: int
    spec: Mapping[str, Any]
    thresholds: Mapping[int, float | None]


def set_threads(threads: int) -> None:
    """Fixes the intra-op thread count of this process (before heavy imports where possible)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _worker_main(
    conn: Connection, configs: Sequence[EvaluatorConfig], seed: int, threads: int
) -> None:
    set_threads(threads)
    try:
        pipeline = TrialPipeline(configs, seed=seed)
    except Exception as exc:  # reported to the driver, which fails the run with it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        message = conn.recv()
        if message is None:
            return
        trial_id, spec, thresholds = message

        def report(partial: TrialOutcome, trial_id: int = trial_id) -> None:
            conn.send(("stage", trial_id, partial.to_dict()))

        try:
            outcome = pipeline.run(ArchSpec.from_dict(spec), thresholds, report)
        except Exception as exc:  # evaluators catch their own errors; this is a last guard
            outcome = failed(f"{type(exc).__name__}: {exc}")
        conn.send(("done", trial_id, outcome.to_dict()))


class WorkerStartError(RuntimeError):
    """A worker could not build its evaluators."""


class _Worker:
    def __init__(self, index: int, ctx: Any, args: tuple[Any, ...]) -> None:
        self.index = index
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(child, *args), daemon=True, name=f"mixnas-worker-{index}"
        )
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.partial: TrialOutcome | None = None  # what the running trial has so far
        self.started = 0.0
        self.ready = False

    @property
    def name(self) -> str:
        return f"local-{self.index}:{self.process.pid}"

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class WorkerPool:
    """``workers`` processes evaluating tasks; `run` hands out tasks and collects outcomes."""

    def __init__(
        self,
        workers: int,
        configs: Sequence[EvaluatorConfig],
        *,
        seed: int,
        threads: int,
        timeout: float | None,
        start_timeout: float = 300.0,
    ) -> None:
        self._ctx = mp.get_context("spawn")
        self._args = (tuple(configs), seed, threads)
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._workers = [_Worker(i, self._ctx, self._args) for i in range(workers)]
        for w in self._workers:
            self._await_ready(w)

    def _await_ready(self, worker: _Worker) -> None:
        if not worker.conn.poll(self.start_timeout):
            worker.kill()
            raise WorkerStartError(f"worker {worker.index} did not start in {self.start_timeout}s")
        try:
            kind, detail = worker.conn.recv()
        except EOFError:
            raise WorkerStartError(f"worker {worker.index} died while starting") from None
        if kind == "error":
            worker.kill()
            raise WorkerStartError(f"evaluators could not be built: {detail}")
        worker.ready = True

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = _Worker(worker.index, self._ctx, self._args)
        self._await_ready(fresh)
        self._workers[worker.index] = fresh
        return fresh

    def run(
        self, tasks: Iterable[Task], on_done: Callable[[Task, TrialOutcome, str], None]
    ) -> None:
        """Evaluates every task, calling ``on_done(task, outcome, worker_name)`` as each ends."""
        queue = list(tasks)
        while queue or any(w.task is not None for w in self._workers):
            for w in self._workers:
                if w.task is None and queue:
                    w.task, w.started = queue.pop(0), time.monotonic()
                    w.conn.send((w.task.trial_id, dict(w.task.spec), dict(w.task.thresholds)))
            busy = [w for w in self._workers if w.task is not None]
            ready = wait(
                [w.conn for w in busy] + [w.process.sentinel for w in busy],
                timeout=self._next_deadline(busy),
            )
            for w in busy:
                self._collect(w, ready, on_done)

    def _next_deadline(self, busy: Sequence[_Worker]) -> float | None:
        if self.timeout is None:
            return None
        now = time.monotonic()
        return max(0.0, min(w.started + self.timeout - now for w in busy))

    def _collect(
        self,
        w: _Worker,
        ready: list[Any],
        on_done: Callable[[Task, TrialOutcome, str], None],
    ) -> None:
        task = w.task
        assert task is not None
        name = w.name
        while w.conn in ready and w.conn.poll():
            try:
                message = w.conn.recv()
            except EOFError:
                break
            if message[0] == "stage":
                w.partial = TrialOutcome.from_dict(message[2])
                continue
            if message[0] == "done":
                w.task, w.partial = None, None
                on_done(task, TrialOutcome.from_dict(message[2]), name)
                return
        if w.process.sentinel in ready or not w.process.is_alive():
            code, partial = w.process.exitcode, w.partial
            self._replace(w)
            on_done(task, failed(f"worker process died (exit code {code})", partial), name)
            return
        if self.timeout is not None and time.monotonic() - w.started >= self.timeout:
            partial = w.partial
            self._replace(w)
            on_done(task, failed(f"timed out after {self.timeout:g} s", partial), name)

    def close(self) -> None:
        for w in self._workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                w.conn.send(None)  # a worker that died already has no pipe to close
        for w in self._workers:
            # a worker has nothing left to save: a short grace, then no waiting on
            # interpreter teardown
            w.process.join(1.0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineRunner:
    """``workers: 0``: evaluates in the driver's process (for debugging; no time limit)."""

    def __init__(self, configs: Sequence[EvaluatorConfig], *, seed: int) -> None:
        self.pipeline = TrialPipeline(configs, seed=seed)

    def run(
        self, tasks: Iterable[Task], on_done: Callable[[Task, TrialOutcome, str], None]
    ) -> None:
        for task in tasks:
            try:
                outcome = self.pipeline.run(ArchSpec.from_dict(task.spec), task.thresholds)
            except Exception as exc:
                outcome = failed(f"{type(exc).__name__}: {exc}")
            on_done(task, outcome, f"inline:{os.getpid()}")

    def close(self) -> None:
        pass

    def __enter__(self) -> InlineRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
