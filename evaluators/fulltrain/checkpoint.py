"""The output folder of a full training run, and how its files are written and read.

Layout (a contract: export and verification code reads it)::

    OUT/spec.json              the ArchSpec, as ``ArchSpec.to_json`` writes it
    OUT/recipe.yaml            the resolved recipe (data source included)
    OUT/metrics.jsonl          one JSON object per epoch: epoch, lr, train_loss, val_top1,
    OUT/metrics.csv            val_loss, seconds (val_* empty on epochs without evaluation);
                               another task logs its own val_* (`metric_columns`)
    OUT/checkpoints/last.pt    everything a resume needs (see `TrainState`)
    OUT/checkpoints/best.pt    the best weights (a state_dict; the EMA's when EMA is on)
    OUT/train_record.json      written last: what was trained on what, and how well

Every file is written atomically (a temporary file, then a rename), so a kill at any instant leaves
the old version or the new one. Checkpoints hold only tensors, numbers, strings, lists and dicts,
so they load with ``torch.load(..., weights_only=True)`` (no pickled objects run on load).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evaluators.fulltrain.recipe import TrainError

FORMAT = 1
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "val_top1", "val_loss", "seconds")


def metric_columns(metrics: Sequence[str]) -> tuple[str, ...]:
    """The per-epoch columns of a task that logs validation ``metrics`` (`TaskKind.columns`):
    classification's ``top1, loss`` give `METRIC_COLUMNS`."""
    return ("epoch", "lr", "train_loss", *(f"val_{m}" for m in metrics), "seconds")


@dataclass(frozen=True)
class Layout:
    """The paths of one training run's folder."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def metrics_jsonl(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def record(self) -> Path:
        return self.root / "train_record.json"


@contextlib.contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """Holds ``root/.lock`` exclusively: two runs writing one folder would interleave their
    checkpoints. An OS file lock (``flock``), dropped by the kernel when its process ends however
    it ends, so a killed run leaves no stale lock; the file names the holder's pid."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise TrainError(
                f"{root}: in use by another training run (pid {holder}); wait for it to finish "
                "or stop it, or use another output folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_atomic(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_tensors(path: Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename (never half a checkpoint)."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    write_atomic(path, buffer.getvalue())


def load_tensors(path: Path, what: str) -> dict[str, Any]:
    """A checkpoint read with ``weights_only=True``; a damaged one is a one-line `TrainError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise TrainError(f"{path}: not a readable {what} ({first})") from None
    if not isinstance(state, dict):
        raise TrainError(f"{path}: not a {what} (a {type(state).__name__}, not a mapping)")
    return state


def rng_state() -> dict[str, Any]:
    """The global RNG states that training draws from (drop path), as tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class MetricsLog:
    """``metrics.jsonl`` and ``metrics.csv``, one row per epoch, kept equal to the checkpoint's
    history: `reset` rewrites both from the rows a (resumed) run starts with, so the rows of an
    epoch that a kill cut off before its checkpoint do not appear twice; `append` adds a row."""

    def __init__(self, layout: Layout, columns: Sequence[str] = METRIC_COLUMNS) -> None:
        self.layout = layout
        self.columns = tuple(columns)

    def reset(self, rows: Sequence[Mapping[str, Any]]) -> None:
        text = "".join(_json_line(r, self.columns) for r in rows)
        write_atomic(self.layout.metrics_jsonl, text)
        write_atomic(self.layout.metrics_csv, _csv_text(rows, self.columns, header=True))

    def append(self, row: Mapping[str, Any]) -> None:
        for path, text in (
            (self.layout.metrics_jsonl, _json_line(row, self.columns)),
            (self.layout.metrics_csv, _csv_text([row], self.columns, header=False)),
        ):
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()


def _json_line(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    return json.dumps({k: row.get(k) for k in columns}) + "\n"


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(k) is None else row[k] for k in columns])
    return out.getvalue()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = [
    "FORMAT",
    "METRIC_COLUMNS",
    "Layout",
    "MetricsLog",
    "folder_lock",
    "load_tensors",
    "metric_columns",
    "read_metrics",
    "rng_state",
    "save_tensors",
    "set_rng_state",
    "write_atomic",
    "write_json",
]
