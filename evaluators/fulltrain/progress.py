"""What a training run shows while it runs: a bar on a terminal, a line per epoch otherwise.

`mixnas.progress.Ticker` is the CLI's bar; the library cannot import it (imports flow
``evaluators <- mixnas``), so `EpochProgress` follows its conventions on stderr: a tqdm bar over the
optimizer steps when stderr is a terminal, else one plain line per finished epoch (a log, CI,
``nohup``), in Ticker's format: ``train 3f2a...: 3/30 epochs (10%), 42 s, loss=1.234, val=56.7``.
Only the process that asks for it shows anything (rank 0 under torchrun).
"""

from __future__ import annotations

import sys
import time
from typing import Any


class EpochProgress:
    """Progress of one training run (see the module docstring); ``quiet`` shows nothing."""

    def __init__(
        self,
        desc: str,
        epochs: int,
        steps_per_epoch: int,
        *,
        start_epoch: int,
        quiet: bool,
        metric: str = "val_top1",
    ) -> None:
        self.desc, self.epochs, self.quiet = desc, epochs, quiet
        self.metric = metric  # the row's value shown as ``val=`` (the task's primary metric)
        self.stream = sys.stderr
        self._start = time.monotonic()
        self._bar: Any = None
        if not quiet and _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=epochs * steps_per_epoch,
                initial=start_epoch * steps_per_epoch,
                desc=desc,
                unit="step",
                file=self.stream,
                dynamic_ncols=True,
            )

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def step(self, loss: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            self._bar.update(1)

    def epoch(self, done: int, row: dict[str, Any]) -> None:
        """Epoch ``done`` (1-based) finished with metrics ``row``."""
        if self.quiet:
            return
        val = row.get(self.metric)
        shown = f", loss={row['train_loss']:.3f}" + ("" if val is None else f", val={val:.2f}")
        if self._bar is not None:
            self._bar.set_postfix_str(f"epoch {done}/{self.epochs}{shown}")
            return
        spent = time.monotonic() - self._start
        share = 100 * done / self.epochs
        line = f"{self.desc}: {done}/{self.epochs} epochs ({share:.0f}%), {spent:.0f} s{shown}"
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


__all__ = ["EpochProgress"]
