"""Train, validation and test splits of a data source, shaped for a spec's input.

`evaluators.data.load_dataset` reads the source (built-in tasks, an ``.npz`` file, an image folder)
and splits it into training and validation sets. Generated tasks also hold a test split that no
search saw; for the other sources `load_splits` holds out ``test_fraction`` of the training split
as the test split, drawn with a generator seeded by ``data_seed`` alone, so the test examples are
the same on every run, machine and number of ranks. Model selection (best epoch, early stopping)
reads the validation split only; the test split is evaluated once, at the end.

A task other than classification loads its data through its kind (`evaluators.task_kinds`:
``TaskKind.dataset``); there the default source ``synthetic`` (a classification set) stands for
the kind's own default (``dyck``, ``seg_shapes``, ``sr_images``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluators.data import DatasetError, load_dataset
from evaluators.fulltrain.recipe import DataRecipe, TrainError
from evaluators.task_kinds import CLASSIFICATION, TaskKind
from search_space.spec import ArchSpec, InputSpec

_TEST_SALT = 104_729  # keeps the test draw apart from load_dataset's validation draw


@dataclass(frozen=True)
class Splits:
    """In-memory splits; ``x_test`` is None when there is no test split (``test_fraction: 0``
    for a source without one)."""

    source: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    num_classes: int
    test_from: str  # "source" (the task's own) or "train" (held out of the training split)

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.y_train),
            "val": len(self.y_val),
            "test": 0 if self.y_test is None else len(self.y_test),
        }


def load_splits(
    inp: InputSpec, data: DataRecipe, kind: TaskKind | None = None, spec: ArchSpec | None = None
) -> Splits:
    """Loads ``data`` for ``inp`` (for ``kind``'s task, whose data options ``spec`` may
    complete: the super-resolution scale); a bad name, path or option is a one-line
    `TrainError`."""
    try:
        if kind is None or kind.name == CLASSIFICATION:
            ds = load_dataset(data.name, inp, seed=data.data_seed, **dict(data.options))
        else:
            options = dict(data.options)
            if spec is not None:
                options = kind.data_options(spec, options)
            name = None if data.name == "synthetic" else data.name
            ds = kind.dataset(name, inp, seed=data.data_seed, options=options)
    except DatasetError as err:
        raise TrainError(f"data.name: {err}") from None
    if ds.x_test is not None and ds.y_test is not None:
        x_test, y_test = ds.x_test, ds.y_test
        return Splits(
            ds.name,
            ds.x_train,
            ds.y_train,
            ds.x_val,
            ds.y_val,
            x_test,
            y_test,
            ds.num_classes,
            "source",
        )
    if data.test_fraction == 0:
        return Splits(
            ds.name, ds.x_train, ds.y_train, ds.x_val, ds.y_val, None, None, ds.num_classes, "none"
        )
    n = len(ds.y_train)
    n_test = max(1, round(n * data.test_fraction))
    if n - n_test < 1:
        raise TrainError(
            f"data.test_fraction: {data.name} has {n} training examples, too few to hold out "
            f"{data.test_fraction:g} of them as a test split; allowed: 0 (no test split) or a "
            "larger dataset"
        )
    gen = torch.Generator().manual_seed(data.data_seed + _TEST_SALT)
    order = torch.randperm(n, generator=gen)
    test, train = order[:n_test], order[n_test:]
    return Splits(
        ds.name,
        ds.x_train[train],
        ds.y_train[train],
        ds.x_val,
        ds.y_val,
        ds.x_train[test],
        ds.y_train[test],
        ds.num_classes,
        "train",
    )


__all__ = ["Splits", "load_splits"]
