"""Generated tasks where the architecture matters: seeded, offline, cached on disk.

``load_dataset(name, input_spec, seed=s, **options)`` (in `evaluators.data`) comes here for the
generated tasks, one or two per kind of reach (docs/tasks.md):

* ``pathfinder`` (long-range image): are two dots joined by one dashed path? 2 classes.
* ``listops`` (long-range sequence): the value of a nested MIN/MAX/MED/SM expression. 10 classes.
* ``textured_shapes`` (local image): shape x texture of one object on clutter. 10 classes.
* ``same_different`` (long-range image): are two distant marks the same colour? 2 classes.
* ``dyck`` (sequence; a causal language-modelling corpus): well-nested brackets of several
  kinds; as classification, the nesting depth. 8 classes. `evaluators.tasks.language` turns it
  (or any token task, or a user's ``.npz`` of sequences) into next-token targets.
* ``seg_shapes`` (segmentation): 1-4 textured shapes on clutter and their per-pixel class mask;
  as many classes as the spec asks (2..11, background 0). A `DenseTask`.
* ``sr_images`` (super-resolution): textured, cluttered images at ``scale`` times the spec's
  resolution and their area-downsampled versions. A `DenseTask`.

Options, besides each task's own knobs (`TASKS[name].knobs`):

* ``n_train``, ``n_val``, ``n_test`` (16000, 2000, 2000; a dense task may default to fewer):
  examples per split. Each split is
  drawn from its own seeded stream, so changing one size leaves the other splits unchanged, and
  the test split (``Dataset.x_test``) is never used by a search.
* ``difficulty`` (``easy | medium | hard``, default ``medium``): a preset of the knobs; knobs
  given explicitly win over it.
* ``cache`` (true): read and write the disk cache (`evaluators.tasks.cache`).

Determinism: the same name, options, seed and sizes give the same tensors on any machine (numpy's
``Generator`` streams, seeded from (task, split, seed)); different seeds give different samples.
Labels are balanced exactly (a split size that is not a multiple of the class count gives the
first classes one example more).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import torch

from evaluators.data import Dataset, DatasetError
from evaluators.tasks import (
    dyck,
    listops,
    pathfinder,
    same_different,
    seg_shapes,
    shapes,
    sr_images,
)
from evaluators.tasks.base import DIFFICULTIES, TASKS, Task, check_knob
from evaluators.tasks.cache import CACHE_ENV, cache_dir, cached_arrays
from evaluators.tasks.dense import DenseTask
from search_space.spec import InputSpec

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
COMMON_DEFAULTS: dict[str, Any] = {
    "n_train": 16000,
    "n_val": 2000,
    "n_test": 2000,
    "difficulty": "medium",
    "cache": True,
}
_MAX_SIZE = 10_000_000


def load_plugins() -> None:
    """Registers the tasks of installed plug-ins (entry point group ``mixnas.datasets``), once,
    after the built-ins; a plug-in that fails has its tasks taken back (`search_space.plugins`)."""
    from search_space.plugins import load_group

    for plugin in load_group("mixnas.datasets", watch=lambda: (("task", n) for n in TASKS)):
        if not plugin.ok:
            for kind, name in plugin.registered:
                if kind == "task":
                    TASKS.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered task names: the built-ins and those of installed plug-ins."""
    load_plugins()
    return tuple(TASKS)


def resolve(
    name: str, input_spec: InputSpec, options: Mapping[str, Any]
) -> tuple[Task, dict[str, Any], dict[str, int], bool]:
    """Checks ``options`` and ``input_spec`` for task ``name``: returns the task, its complete
    generation settings, the split sizes and whether to use the cache. Every error is a
    one-line `DatasetError`."""
    if name not in names():
        raise DatasetError(f"unknown task {name!r}; allowed: {', '.join(names())}")
    task = TASKS[name]
    allowed = (*COMMON_DEFAULTS, *task.knobs)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DatasetError(f"{name}: unknown option {unknown[0]!r}; allowed: {', '.join(allowed)}")
    dense = isinstance(task, DenseTask)
    own = task.defaults if isinstance(task, DenseTask) else {}
    merged = {**COMMON_DEFAULTS, **own, **options}
    difficulty = merged["difficulty"]
    if difficulty not in DIFFICULTIES:
        raise DatasetError(
            f"{name}.difficulty: must be one of {', '.join(DIFFICULTIES)} (got {difficulty!r})"
        )
    if not isinstance(merged["cache"], bool):
        raise DatasetError(f"{name}.cache: must be true or false (got {merged['cache']!r})")
    sizes = {}
    for split in SPLITS:
        key = f"n_{split}"
        value = merged[key]
        least = 0 if split == "test" else 1
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not float(value).is_integer()
            or not least <= value <= _MAX_SIZE
        ):
            raise DatasetError(
                f"{name}.{key}: must be an integer in {least}..{_MAX_SIZE} (got {value!r})"
            )
        sizes[split] = int(value)
    knobs = dict(task.presets[difficulty])
    knobs.update({k: v for k, v in options.items() if k in task.knobs})
    knobs = {k: check_knob(name, k, knobs.get(k), task.knobs[k]) for k in task.knobs}
    if not dense and input_spec.num_classes != task.num_classes:
        raise DatasetError(
            f"{name}: input.num_classes: the task has {task.num_classes} classes; allowed: "
            f"{task.num_classes} (got {input_spec.num_classes})"
        )
    return task, task.settings(input_spec, knobs), sizes, merged["cache"]


def load_task(
    name: str, input_spec: InputSpec, *, seed: int = 0, options: Mapping[str, Any] | None = None
) -> Dataset:
    """Generates (or reads from the cache) the splits of task ``name`` shaped for ``input_spec``
    (see the module docstring for the options)."""
    task, settings, sizes, use_cache = resolve(name, input_spec, options or {})
    raw: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split, size in sizes.items():
        content = {
            "task": name,
            "version": task.version,
            "settings": settings,
            "seed": int(seed),
            "split": split,
            "size": size,
        }
        raw[split], labels[split] = cached_arrays(
            content,
            partial(_generate, task, settings, seed, split, size),
            use=use_cache,
        )
    x = task.encode(raw, input_spec)
    if isinstance(task, DenseTask):
        y = task.encode_targets(labels, input_spec)
    else:
        y = {split: _tensor(labels[split]) for split in SPLITS}
    return Dataset(
        name,
        x["train"],
        y["train"],
        x["val"],
        y["val"],
        input_spec.num_classes if isinstance(task, DenseTask) else task.num_classes,
        x_test=x["test"],
        y_test=y["test"],
    )


def split_rng(name: str, seed: int, split: str) -> np.random.Generator:
    """The seeded stream of one split: independent of the other splits and of other tasks."""
    entropy = [zlib.crc32(name.encode()), SPLITS.index(split), int(seed) % 2**64]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def balanced_labels(size: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` labels, each class ``size // num_classes`` times (the first ``size %
    num_classes`` classes once more), in a seeded random order."""
    return rng.permutation(np.arange(size) % num_classes).astype(np.int64)


def _generate(
    task: Task, settings: Mapping[str, Any], seed: int, split: str, size: int
) -> tuple[np.ndarray, np.ndarray]:
    start = time.perf_counter()
    rng = split_rng(task.name, seed, split)
    if isinstance(task, DenseTask):
        x, y = task.generate_pairs(size, rng, settings)
    else:
        y = balanced_labels(size, task.num_classes, rng)
        x = task.generate(y, rng, settings)
    log.info(
        "%s: generated %d %s examples in %.1fs", task.name, size, split, time.perf_counter() - start
    )
    return x, y


def _tensor(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(labels.astype(np.int64))


__all__ = [
    "CACHE_ENV",
    "COMMON_DEFAULTS",
    "SPLITS",
    "TASKS",
    "balanced_labels",
    "cache_dir",
    "dyck",
    "listops",
    "load_plugins",
    "load_task",
    "names",
    "pathfinder",
    "resolve",
    "same_different",
    "seg_shapes",
    "shapes",
    "split_rng",
    "sr_images",
]
