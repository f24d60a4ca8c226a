"""`TrainRecipe`: every knob of a full training run, with defaults, read from YAML and checked.

Who calls what, when: ``mixnas train --recipe recipe.yaml`` calls `load_recipe`; library callers
build a `TrainRecipe` directly (``TrainRecipe(epochs=30)``) or from a mapping with
`recipe_from_dict`. `evaluators.fulltrain.train_spec` writes the resolved recipe back to the run
folder as ``recipe.yaml`` (`recipe_to_dict`), so that folder alone says how its weights came about.

Every error is a `TrainError` whose one line names the file, the field, the bad value and what is
allowed: ``recipe.yaml: ema_decay: must be a decay in [0, 1), 0 for off (got 1.5)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from evaluators.devices import AMP_MODES
from search_space.errors import MixnasError, shorten

OPTIMIZERS = ("adamw",)
SCHEDULES = ("cosine",)
CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "amp": AMP_MODES,
}
# integer fields and their least allowed value
INTEGERS = {
    "epochs": 1,
    "batch_size": 1,
    "eval_batch_size": 1,
    "patience": 0,
    "seed": 0,
    "num_workers": 0,
    "eval_every": 1,
}
# number fields that are fractions or probabilities: at most 1 (``ema_decay`` strictly below)
FRACTIONS = ("label_smoothing", "mix_prob", "drop_path_rate", "mix_switch_prob")
# fields that change where or how fast a run computes, not its weights: a resume may change them
NEUTRAL = ("num_workers", "eval_batch_size")


class TrainError(MixnasError, ValueError):
    """A recipe, data source, checkpoint or run folder is invalid; the message is one line."""


@dataclass(frozen=True)
class DataRecipe:
    """Where the examples come from (`evaluators.data.load_dataset`).

    Attributes:
        name: a built-in dataset or task name, a path to an ``.npz`` file, or to a folder of
            images per class (``root/<class>/*.png``).
        options: `load_dataset` options (``val_fraction``, a task's knobs, ...).
        data_seed: seeds the generation (tasks) and the train/validation/test split.
        test_fraction: share of the training split held out as the test split when the source
            has no test split of its own (generated tasks have one); 0 for no test evaluation.
    """

    name: str = "synthetic"
    options: Mapping[str, Any] = field(default_factory=dict)
    data_seed: int = 0
    test_fraction: float = 0.1


@dataclass(frozen=True)
class TrainRecipe:
    """How a spec is trained to completion; every field has a default (see docs/training.md).

    The schedule is per optimizer step: a linear warm-up from ``lr / warmup_steps`` to ``lr``
    over ``warmup_epochs``, then a cosine decay to ``min_lr`` at the last step. ``patience``
    epochs without a ``min_delta`` gain of validation top-1 stop the run (0: never).
    ``mixup_alpha``/``cutmix_alpha`` > 0 turn those on, applied to a batch with probability
    ``mix_prob`` (both on: cutmix with probability ``mix_switch_prob``). ``ema_decay`` > 0 keeps an
    exponential moving average of the weights, which is then what is evaluated and saved as best.

    ``task`` (`evaluators.task_kinds`): ``classification``, ``causal_lm``, ``segmentation``,
    ``super_resolution`` or a plug-in's kind; None (the default) takes it from what the spec's
    head produces. The task's primary metric (``top1``; ``miou`` for segmentation, ``psnr`` for
    super-resolution) picks the best checkpoint and drives ``patience``. Label smoothing applies
    to the cross-entropy tasks (classification, causal_lm) and is ignored for the others;
    mixup/CutMix mix class labels, so they are refused for every task but classification.
    """

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 5.0
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    optimizer: str = "adamw"
    schedule: str = "cosine"
    grad_clip: float = 1.0  # max gradient norm; 0 for none
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    ema_decay: float = 0.0
    patience: int = 0
    min_delta: float = 0.0
    seed: int = 0
    amp: str = "off"
    num_workers: int = 0
    drop_path_rate: float = 0.0
    eval_every: int = 1
    eval_batch_size: int = 256
    task: str | None = None
    data: DataRecipe = field(default_factory=DataRecipe)

    @property
    def mixing(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mix_prob > 0


def load_recipe(path: str | Path) -> TrainRecipe:
    """The recipe a YAML (or JSON) file holds; missing fields keep their defaults."""
    from search_space.declare.loader import read_declaration
    from search_space.errors import SpaceError

    try:
        data = read_declaration(path)
    except SpaceError as err:  # unreadable, not YAML, a key twice: already one line
        raise TrainError(str(err)) from None
    if data is None:
        data = {}  # an empty file: every default
    return recipe_from_dict(data, str(path))


def recipe_from_dict(data: Any, source: str = "recipe") -> TrainRecipe:
    """Checks every field's type and range; unknown fields are refused (a typo is not a default)."""
    if not isinstance(data, Mapping):
        raise TrainError(f"{source}: a recipe must be a mapping of fields (got {shorten(data)})")
    known = [f.name for f in fields(TrainRecipe)]
    _refuse_unknown(data, known, source, "")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "data":
            values[key] = data_from_dict(value, source)
        elif key == "task":
            values[key] = _task(value, source)
        else:
            values[key] = _checked(key, value, getattr(TrainRecipe(), key), source)
    recipe = TrainRecipe(**values)
    if recipe.min_lr > recipe.lr:
        raise TrainError(
            f"{source}: min_lr: must be at most lr ({recipe.lr}) (got {recipe.min_lr})"
        )
    return recipe


def data_from_dict(data: Any, source: str = "recipe", base: DataRecipe | None = None) -> DataRecipe:
    """A ``data`` block (``{name, options, data_seed, test_fraction}``) over ``base``'s values."""
    if isinstance(data, str):
        data = {"name": data}  # ``data: digits`` for short
    if not isinstance(data, Mapping):
        raise TrainError(
            f"{source}: data: must be a mapping {{name, options, data_seed, test_fraction}} "
            f"(got {shorten(data)})"
        )
    known = [f.name for f in fields(DataRecipe)]
    _refuse_unknown(data, known, source, "data.")
    out = base or DataRecipe()
    for key, value in data.items():
        where = f"{source}: data.{key}"
        if key == "name":
            if isinstance(value, Path):
                value = str(value)
            if not isinstance(value, str) or not value:
                raise TrainError(
                    f"{where}: must be a dataset name or a path (got {shorten(value)})"
                )
        elif key == "options":
            if value is None:
                value = {}
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise TrainError(f"{where}: must be a mapping of options (got {shorten(value)})")
            value = dict(value)
        elif key == "data_seed":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TrainError(f"{where}: must be an integer >= 0 (got {shorten(value)})")
        elif key == "test_fraction" and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1
        ):
            raise TrainError(f"{where}: must be a fraction in [0, 1) (got {shorten(value)})")
        out = replace(out, **{key: value})
    return out


def recipe_to_dict(recipe: TrainRecipe) -> dict[str, Any]:
    """Plain values (a YAML/JSON-safe mapping); `recipe_from_dict` reads it back to ``recipe``."""
    out = asdict(recipe)
    out["data"]["options"] = dict(recipe.data.options)
    return out


def _task(value: Any, source: str) -> str | None:
    """A task kind's name (`evaluators.task_kinds`), or None: the spec's head decides."""
    if value is None:
        return None
    from evaluators import task_kinds

    if not isinstance(value, str) or value not in task_kinds.KINDS:
        allowed = ", ".join(task_kinds.names())
        raise TrainError(
            f"{source}: task: must be one of {allowed}, or null for the one the spec's head "
            f"serves (got {shorten(value)})"
        )
    return value


def _refuse_unknown(data: Mapping[Any, Any], known: list[str], source: str, prefix: str) -> None:
    unknown = sorted((str(k) for k in data if k not in known), key=str)
    if unknown:
        raise TrainError(
            f"{source}: {prefix}{unknown[0]}: unknown field; allowed: {', '.join(known)}"
        )


def _checked(key: str, value: Any, default: Any, source: str) -> Any:
    where = f"{source}: {key}"
    if key in CHOICES:
        if key == "amp" and value is False:
            value = "off"  # YAML 1.1 reads a bare ``off`` as false
        if value not in CHOICES[key]:
            allowed = ", ".join(CHOICES[key])
            raise TrainError(f"{where}: must be one of {allowed} (got {shorten(value)})")
        return value
    if key in INTEGERS:
        low = INTEGERS[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TrainError(f"{where}: must be an integer >= {low} (got {shorten(value)})")
        return value
    assert isinstance(default, float), key  # every other field is a number
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise TrainError(f"{where}: must be a number >= 0 (got {shorten(value)})")
    if key in FRACTIONS and value > 1:
        raise TrainError(f"{where}: must be a fraction in [0, 1] (got {shorten(value)})")
    if key == "ema_decay" and value >= 1:
        raise TrainError(f"{where}: must be a decay in [0, 1), 0 for off (got {shorten(value)})")
    if key == "lr" and value == 0:
        raise TrainError(f"{where}: must be a number > 0 (got {shorten(value)})")
    return float(value)


def outcome(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a recipe mapping that decide the trained weights (a resume keeps them)."""
    return {k: v for k, v in recipe.items() if k not in NEUTRAL}


__all__ = [
    "DataRecipe",
    "TrainError",
    "TrainRecipe",
    "data_from_dict",
    "load_recipe",
    "outcome",
    "recipe_from_dict",
    "recipe_to_dict",
]
