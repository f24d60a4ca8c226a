"""Generated tasks with a dense target: a class per pixel (segmentation) or a whole image
(super-resolution), not a class per example.

A `DenseTask` is a `Task` whose ``generate_pairs(size, rng, settings)`` draws the examples and
their targets together (``(raw_x, raw_y)``, compact numpy arrays, what the disk cache stores) and
whose ``encode_targets`` turns the raw targets of all splits into tensors. `evaluators.tasks`
(``resolve``, ``load_task``) calls these instead of drawing balanced labels, and takes the class
count from the spec (the task's ``settings`` checks it): ``Task.num_classes`` is 0 (any).
``defaults`` overrides the common split sizes (a high-resolution image is 16 times a label).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evaluators.tasks.base import Task
from search_space.spec import InputSpec


def _unset_pairs(
    size: int, rng: np.random.Generator, settings: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    raise NotImplementedError


def _unset_targets(raw: Mapping[str, np.ndarray], spec: InputSpec) -> dict[str, torch.Tensor]:
    raise NotImplementedError


def no_labels(labels: np.ndarray, rng: np.random.Generator, s: Mapping[str, Any]) -> np.ndarray:
    raise NotImplementedError("a dense task draws its examples with generate_pairs")


@dataclass(frozen=True)
class DenseTask(Task):
    """A generated task with dense targets (see the module docstring).

    Attributes:
        generate_pairs: ``(size, rng, settings) -> (raw_x, raw_y)``.
        encode_targets: ``({split: raw_y}, input_spec) -> {split: tensor}``.
        defaults: split sizes that replace the common defaults (``n_train``, ...).
        target: what the targets are: ``mask`` (a class per pixel) or ``image``; the task
            kinds (`evaluators.task_kinds`) accept the generated tasks of their target.
    """

    generate_pairs: Callable[
        [int, np.random.Generator, Mapping[str, Any]], tuple[np.ndarray, np.ndarray]
    ] = _unset_pairs
    encode_targets: Callable[[Mapping[str, np.ndarray], InputSpec], dict[str, torch.Tensor]] = (
        _unset_targets
    )
    defaults: Mapping[str, Any] = field(default_factory=dict)
    target: str = "mask"


def balanced_over_images(size: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` class indices in ``0..classes - 1``, each as often as the others (the first
    ``size % classes`` once more), in a seeded order."""
    return rng.permutation(np.arange(size) % classes).astype(np.int64)


__all__ = ["DenseTask", "balanced_over_images", "no_labels"]
