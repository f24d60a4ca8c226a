"""The protocol every generated task follows, and the checks of its options.

A task is a `Task` value registered under a stable name. `evaluators.tasks.load_task` calls, in
order: ``settings(input_spec, knobs)`` (checks that the task can produce the input the spec asks
for and returns the complete, JSON-serialisable generation settings: shape and difficulty
knobs, every default filled in), then ``generate(labels, rng, settings)`` once per split (returns
a compact numpy array, one example per label, that is what the disk cache stores), then
``encode(raw, input_spec)`` (turns the raw arrays of all splits into the tensors the model
consumes). Labels are drawn by the caller, balanced over the classes, so a generator only has to
draw an example of a given class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from evaluators.data import DatasetError
from search_space.spec import InputSpec

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Knob:
    """One difficulty option of a task: its type, its range and what it means.

    ``None`` is always accepted and means "derived from the input" (e.g. a dash length that
    scales with the resolution); the task's ``settings`` resolves it.
    """

    kind: type  # int, float or bool
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""


@dataclass(frozen=True)
class Task:
    """A generated dataset (see the module docstring for the calling order).

    Attributes:
        name: the dataset name ``load_dataset`` accepts.
        version: part of the cache key; bump it whenever the same settings and seed would
            produce different arrays.
        num_classes: the spec's ``num_classes`` must equal it.
        knobs: the task's own options.
        presets: for each difficulty, the knob values it implies (explicit options win).
        settings: ``(input_spec, knobs) -> settings``; raises `DatasetError` on an input the
            task cannot produce.
        generate: ``(labels, rng, settings) -> raw array`` with ``len(labels)`` examples.
        encode: ``({split: raw}, input_spec) -> {split: tensor}``.
        doc: one line for listings.
    """

    name: str
    version: int
    num_classes: int
    knobs: Mapping[str, Knob]
    presets: Mapping[str, Mapping[str, Any]]
    settings: Callable[[InputSpec, Mapping[str, Any]], dict[str, Any]]
    generate: Callable[[np.ndarray, np.random.Generator, Mapping[str, Any]], np.ndarray]
    encode: Callable[[Mapping[str, np.ndarray], InputSpec], dict[str, torch.Tensor]]
    doc: str = ""


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Adds ``task`` to the registry; a second task of the same name raises."""
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    missing = [d for d in DIFFICULTIES if d not in task.presets]
    if missing:
        raise ValueError(f"task {task.name!r}: no preset for difficulty {missing[0]!r}")
    TASKS[task.name] = task
    return task


def check_knob(task: str, key: str, value: Any, knob: Knob) -> Any:
    """``value`` as the knob's type, or a one-line `DatasetError` naming task, knob and value."""
    if value is None:
        return None
    if knob.kind is bool:
        if not isinstance(value, bool):
            raise DatasetError(f"{task}.{key}: must be true or false (got {value!r})")
        return value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if knob.kind is int and not (is_number and float(value).is_integer()):
        raise DatasetError(f"{task}.{key}: must be an integer{_range(knob)} (got {value!r})")
    if not is_number or not np.isfinite(value):
        raise DatasetError(f"{task}.{key}: must be a number{_range(knob)} (got {value!r})")
    cast = int(value) if knob.kind is int else float(value)
    low = knob.minimum if knob.minimum is not None else -np.inf
    high = knob.maximum if knob.maximum is not None else np.inf
    if not low <= cast <= high:
        kind = "an integer" if knob.kind is int else "a number"
        raise DatasetError(f"{task}.{key}: must be {kind}{_range(knob)} (got {value!r})")
    return cast


def _range(knob: Knob) -> str:
    def show(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else str(v)

    if knob.minimum is not None and knob.maximum is not None:
        return f" in {show(knob.minimum)}..{show(knob.maximum)}"
    if knob.minimum is not None:
        return f" >= {show(knob.minimum)}"
    if knob.maximum is not None:
        return f" <= {show(knob.maximum)}"
    return ""


def input_error(task: str, field: str, value: Any, allowed: str) -> DatasetError:
    """The one-line error for an input the task cannot produce."""
    return DatasetError(f"{task}: input.{field}: {allowed} (got {value!r})")


def normalised_images(raw: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """uint8 ``N x C x H x W`` arrays as float tensors with zero mean and unit variance per
    channel, by the statistics of the training split (applied unchanged to the other splits)."""
    train = raw["train"]
    values = np.arange(256) / 255.0
    mean, std = [], []
    for channel in range(train.shape[1]):
        # exact statistics from a histogram of the bytes: no float copy of the split
        counts = np.bincount(train[:, channel].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mu = float((counts * values).sum() / total)
        var = float((counts * (values - mu) ** 2).sum() / max(total - 1, 1))
        mean.append(mu)
        std.append(max(var**0.5, 1e-6))
    shift = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    scale = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    out = {}
    for split, arr in raw.items():
        x = torch.from_numpy(arr).float().mul_(1 / 255.0)
        out[split] = x.sub_(shift).div_(scale)
    return out
