"""What a running search tells its user: a live bar on stderr, and a structured event log.

The bar shows trials done of the budget, failures, pruned trials, the best value of each objective
and the size of the Pareto front; on a resume every count and best value is the run's, not the
session's (`Progress.seed`). ``quiet`` turns it off (CI, scripts). Where stderr is not a terminal
(a log file, ``nohup``, CI) the bar is one plain line every `PERIOD` seconds instead of a redrawn
bar (`Ticker`, which the other long commands use too: ``supernet train``, ``scale --rule
proxy``). The event log
(``events.jsonl`` in the run folder, one JSON object a line) is written either way, so a run can be
followed with ``tail -f`` or read back with pandas. Each finished trial is logged whole (event
``trial``, or ``reused`` for one committed before a kill and logged on resume: spec, metrics,
timings, status, times), so the log is a second copy of the records that ``mixnas doctor
--repair`` rebuilds them from (`mixnas.integrity`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mixnas.config import ObjectiveConfig
from mixnas.records import FAILED, OK, PRUNED, TrialRecord

EVENTS = "events.jsonl"
# seconds between progress lines where stderr is not a terminal (MIXNAS_PROGRESS_PERIOD)
PERIOD = 30.0


class Ticker:
    """Progress of a long command on stderr: a tqdm bar on a terminal, else one line every
    ``period`` seconds (``desc: 120/300 steps (40%), 45 s, loss=1.23``), nothing when ``quiet``.
    ``total`` may be None (a count without an end)."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        *,
        quiet: bool = False,
        initial: int = 0,
        period: float | None = None,
        stream: Any = None,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = initial
        self.postfix: dict[str, Any] = {}
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.period = _period() if period is None else period
        self._start = self._last = time.monotonic()
        self._bar: Any = None
        if not quiet and _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=desc or None,
                unit=unit,
                file=self.stream,
                dynamic_ncols=True,
            )

    def note(self, text: str) -> None:
        """One line about what the command is doing (a phase before the counting starts)."""
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.set(self.n + n, **postfix)

    def set(self, n: int, **postfix: Any) -> None:
        """The count is ``n`` now; ``postfix`` values are shown after it."""
        step, self.n = n - self.n, n
        self.postfix.update(postfix)
        if self.quiet:
            return
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(self.postfix, refresh=False)
            self._bar.update(step)
            return
        now = time.monotonic()
        if now - self._last >= self.period:
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """The plain progress line."""
        count = f"{self.n:,}"
        if self.total:
            count += f"/{self.total:,} {self.unit}s ({100 * self.n / self.total:.0f}%)"
        else:
            count += f" {self.unit}s"
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{count}, {time.monotonic() - self._start:.0f} s{extra}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _period() -> float:
    try:
        return max(0.0, float(os.environ.get("MIXNAS_PROGRESS_PERIOD", PERIOD)))
    except ValueError:
        return PERIOD


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or foreign stream
        return False


class EventLog:
    """Appends one JSON line per event, flushed at once (a killed run keeps its log)."""

    def __init__(self, run_dir: Path) -> None:
        self._file = open(run_dir / EVENTS, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        if self._file.tell() > 0:
            with open(run_dir / EVENTS, "rb") as f:
                f.seek(-1, 2)
                if f.read(1) != b"\n":  # a line cut by a kill: start the next one on its own
                    self._file.write("\n")

    def emit(self, event: str, *, flush: bool = True, **fields: Any) -> None:
        """Appends one event; ``flush=False`` leaves it buffered until `flush` (a driver
        flushes once per batch of trials, after their records are committed)."""
        line = {"time": round(time.time(), 3), "event": event, **fields}
        self._file.write(json.dumps(line, sort_keys=True, default=str) + "\n")
        if flush:
            self._file.flush()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Progress:
    """The live bar (see the module docstring)."""

    def __init__(
        self,
        total: int | None,
        objectives: Sequence[ObjectiveConfig],
        *,
        quiet: bool,
        initial: int = 0,
    ) -> None:
        self.objectives = objectives
        self.failed = self.pruned = 0
        self.best: dict[str, float] = {}
        self._bar = Ticker(total, "", "trial", quiet=quiet, initial=initial)

    def seed(self, told: Iterable[tuple[str, Mapping[str, float]]]) -> None:
        """Counts the trials told before this session (status, metrics), so that failures,
        pruned trials and the best values are the run's on a resume."""
        for status, metrics in told:
            self.failed += status == FAILED
            self.pruned += status == PRUNED
            if status == OK:
                self._track_best(metrics)

    def update(self, record: TrialRecord, front_size: int) -> None:
        self.failed += record.status == FAILED
        self.pruned += record.status == PRUNED
        if record.status == OK:  # the best values are of finished, complete trials
            self._track_best(record.metrics)
        postfix: dict[str, Any] = {
            "failed": self.failed,
            "pruned": self.pruned,
            "front": front_size,
        }
        postfix.update({k: f"{v:.4g}" for k, v in self.best.items()})
        self._bar.update(1, **postfix)

    def _track_best(self, metrics: Mapping[str, float]) -> None:
        for o in self.objectives:
            value = metrics.get(o.metric, math.nan)
            if not math.isfinite(value):
                continue
            old = self.best.get(o.metric)
            better = old is None or (value > old if o.direction == "maximize" else value < old)
            if better:
                self.best[o.metric] = value

    def close(self) -> None:
        self._bar.close()
