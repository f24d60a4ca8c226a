"""What a running search tells its user: a live bar on stderr, and a structured event log.

The bar shows trials done of the budget, failures, pruned trials, the best value of each objective
and the size of the Pareto front. ``quiet`` turns it off (CI, scripts); the event log
(``events.jsonl`` in the run folder, one JSON object a line) is written either way, so a run can be
followed with ``tail -f`` or read back with pandas. Each finished trial is logged whole (event
``trial``, or ``reused`` for one committed before a kill and logged on resume: spec, metrics,
timings, status, times), so the log is a second copy of the records that ``mixnas doctor
--repair`` rebuilds them from (`mixnas.integrity`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixnas.config import ObjectiveConfig
from mixnas.records import FAILED, OK, PRUNED, TrialRecord

EVENTS = "events.jsonl"


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
        self._bar = None
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=initial, unit="trial", file=sys.stderr, dynamic_ncols=True
            )

    def update(self, record: TrialRecord, front_size: int) -> None:
        self.failed += record.status == FAILED
        self.pruned += record.status == PRUNED
        if record.status == OK:  # the best values are of finished, complete trials
            self._track_best(record.metrics)
        if self._bar is None:
            return
        postfix = {"failed": self.failed, "pruned": self.pruned, "front": front_size}
        postfix.update({k: f"{v:.4g}" for k, v in self.best.items()})
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

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
        if self._bar is not None:
            self._bar.close()
