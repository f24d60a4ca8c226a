"""Local evaluation workers: processes that run `TrialPipeline`s, with a time limit per trial.

Why processes: a torch computation cannot be interrupted from another thread, so the only sure way
to stop a trial past its time limit (or one that hangs, or crashes the interpreter) is to kill the
process that runs it. Each worker is a spawned process (no fork: torch and its thread pools are not
fork-safe) that builds its evaluators once and then evaluates trial after trial; a worker killed
for a timeout, or one that died, is replaced by a fresh one and the trial is recorded as failed.

Ctrl-C at a terminal sends SIGINT to the whole process group, workers included. Workers ignore
it (they are started with SIGINT ignored, which a spawned interpreter keeps, so it never raises
KeyboardInterrupt in one): only the driver acts on it, stops them and keeps what finished.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from evaluators.devices import gpu_count, worker_gpu
from mixnas.config import EvaluatorConfig
from mixnas.pipeline import TrialOutcome, TrialPipeline, failed
from search_space.spec import ArchSpec

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
Done = tuple["Task", TrialOutcome, str]  # a finished task, its outcome and the worker that ran it


@dataclass(frozen=True)
class Task:
    """One trial to evaluate: its number, spec (plain data) and screening thresholds; the
    driver's candidate and the time it was handed out stay in the driver."""

    trial_id: int
    spec: Mapping[str, Any]
    thresholds: Mapping[int, float | None]
    candidate: Any = None
    submitted: float = field(default_factory=time.time)


def set_threads(threads: int) -> None:
    """Fixes the intra-op thread count of this process (before heavy imports where possible)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _worker_main(
    conn: Connection,
    configs: Sequence[EvaluatorConfig],
    seed: int,
    threads: int,
    gpu: str | None = None,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C (module docstring)
    if gpu is not None:  # before torch is imported: this worker sees its one GPU as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
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


def exit_reason(code: int | None) -> str:
    """A dead process's exit status in words: its exit code, or the signal that killed it."""
    if code is None:
        return "exit status unknown: still not reaped after 5 s"
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "an unknown signal"
    return f"killed by signal {-code} ({name})"


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the block runs (in the main thread; elsewhere a no-op): a process
    started in it inherits the ignored signal through exec, and Python then installs no
    KeyboardInterrupt handler in it, so not even its start-up can print a traceback."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals cannot be changed here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class WorkerStartError(RuntimeError):
    """A worker could not build its evaluators."""


class _Worker:
    def __init__(self, index: int, ctx: Any, args: tuple[Any, ...], gpu: str | None) -> None:
        self.index = index
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, *args, gpu),
            daemon=True,
            name=f"mixnas-worker-{index}",
        )
        with sigint_ignored():
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
        # one GPU per worker, round-robin, when the machine has any (`evaluators.devices`)
        self._gpus = gpu_count()
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._workers = [self._spawn(i) for i in range(workers)]
        for w in self._workers:
            self._await_ready(w)

    def _spawn(self, index: int) -> _Worker:
        return _Worker(index, self._ctx, self._args, worker_gpu(index, self._gpus))

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
        fresh = self._spawn(worker.index)
        self._await_ready(fresh)
        self._workers[worker.index] = fresh
        return fresh

    @property
    def capacity(self) -> int:
        """How many trials run at once."""
        return len(self._workers)

    @property
    def busy(self) -> int:
        return sum(w.task is not None for w in self._workers)

    def submit(self, task: Task) -> None:
        """Hands ``task`` to an idle worker at once (the caller keeps ``busy < capacity``)."""
        idle = next((w for w in self._workers if w.task is None), None)
        if idle is None:
            raise RuntimeError("every worker is busy; collect a result first")
        idle.task, idle.started = task, time.monotonic()
        idle.conn.send((task.trial_id, dict(task.spec), dict(task.thresholds)))

    def collect(self) -> list[Done]:
        """Waits until at least one running trial ends (finished, failed, timed out or its
        worker died) and returns every one that has, in the order they were seen."""
        done: list[Done] = []
        while not done and self.busy:
            busy = [w for w in self._workers if w.task is not None]
            ready = wait(
                [w.conn for w in busy] + [w.process.sentinel for w in busy],
                timeout=self._next_deadline(busy),
            )
            for w in busy:
                self._collect(w, ready, lambda *item: done.append(item))
        return done

    def run(
        self, tasks: Iterable[Task], on_done: Callable[[Task, TrialOutcome, str], None]
    ) -> None:
        """Evaluates every task, calling ``on_done(task, outcome, worker_name)`` as each ends."""
        queue = list(tasks)
        while queue or self.busy:
            while queue and self.busy < self.capacity:
                self.submit(queue.pop(0))
            for item in self.collect():
                on_done(*item)

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
            # the sentinel can fire before the process is reaped: wait for its status
            w.process.join(5)
            code, partial = w.process.exitcode, w.partial
            self._replace(w)
            on_done(task, failed(f"worker process died ({exit_reason(code)})", partial), name)
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
    """Evaluates in the driver's own process, ``batch`` candidates at a time (`workers: 0`, or
    a run whose evaluators are all cheap); no time limit applies."""

    def __init__(self, configs: Sequence[EvaluatorConfig], *, seed: int, batch: int = 1) -> None:
        self.pipeline = TrialPipeline(configs, seed=seed)
        self.capacity = batch
        self._queue: list[Task] = []
        self._name = f"inline:{os.getpid()}"

    @property
    def busy(self) -> int:
        return len(self._queue)

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def collect(self) -> list[Done]:
        """Evaluates every submitted task, in order."""
        done: list[Done] = []
        while self._queue:
            # one pipeline call per run of tasks asked with the same thresholds
            first = self._queue[0].thresholds
            size = next(
                (i for i, t in enumerate(self._queue) if t.thresholds != first), len(self._queue)
            )
            tasks, self._queue = self._queue[:size], self._queue[size:]
            try:
                specs = [
                    t.candidate.spec if t.candidate is not None else ArchSpec.from_dict(t.spec)
                    for t in tasks
                ]
                outcomes = self.pipeline.run_many(specs, first)
            except Exception as exc:  # evaluators catch their own errors; this is a last guard
                outcomes = [failed(f"{type(exc).__name__}: {exc}")] * len(tasks)
            done.extend((t, o, self._name) for t, o in zip(tasks, outcomes, strict=True))
        return done

    def run(
        self, tasks: Iterable[Task], on_done: Callable[[Task, TrialOutcome, str], None]
    ) -> None:
        for task in tasks:
            self.submit(task)
            for item in self.collect():
                on_done(*item)

    def close(self) -> None:
        pass

    def __enter__(self) -> InlineRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
