"""Training one spec to completion: `train_spec`, and `load_trained` to read the result back.

Who calls what, when: ``mixnas train`` (`mixnas.commands.train`) reads the spec and the recipe and
calls `train_spec` in every process (one, or each rank torchrun starts); export and verification
code calls `load_trained` on the output folder (layout: `evaluators.fulltrain.checkpoint`).
`train_spec` checks its input, resolves the task (the recipe's ``task``, else the one the spec's
head serves: `evaluators.task_kinds.infer`), loads the data, takes the folder's lock, decides
between a fresh start, a resume from ``checkpoints/last.pt`` and a finished folder (left as it
is), and hands the epochs to `evaluators.fulltrain.loop.Trainer`; at the end it evaluates the test
split with the best weights and writes ``train_record.json`` (the task, its primary metric, the
best epoch's validation metrics and the test metrics; ``best_val_top1``/``test_top1`` stay for
the tasks that report a top-1, None for the others).

Devices: ``device`` is ``auto | cpu | cuda | cuda:N`` (`evaluators.devices`; ``auto`` is the CPU
without a GPU); under torchrun each rank resolves it to its own device
(`evaluators.supernet.distributed.rank_device`). Rank 0 alone writes the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from evaluators.fulltrain.augment import check_mixing
from evaluators.fulltrain.checkpoint import (
    FORMAT,
    Layout,
    folder_lock,
    load_tensors,
    write_atomic,
    write_json,
)
from evaluators.fulltrain.loop import Trainer, load_weights
from evaluators.fulltrain.recipe import (
    TrainError,
    TrainRecipe,
    data_from_dict,
    outcome,
    recipe_from_dict,
    recipe_to_dict,
)
from evaluators.fulltrain.splits import Splits, load_splits
from evaluators.supernet import distributed
from evaluators.task_kinds import CLASSIFICATION, TaskKind, get, infer, mismatch
from search_space import build_model
from search_space.nn.builder import count_params
from search_space.spec import ArchSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What `train_spec` did. ``already_done``: the folder held a finished run, left as it is.
    ``best_val``/``test``: the task's ``primary`` metric at the best epoch, and every test
    metric (None without a test split); ``*_top1`` are None for a task without a top-1."""

    out_dir: Path
    best_val_top1: float | None
    test_top1: float | None
    epochs_run: int
    stopped_early: bool
    seconds: float
    already_done: bool = False
    task: str = CLASSIFICATION
    primary: str = "top1"
    best_val: float | None = None
    test: Mapping[str, float | None] | None = None


def train_spec(
    spec: ArchSpec,
    out_dir: Path,
    recipe: TrainRecipe,
    data: Mapping[str, Any],
    *,
    device: str = "auto",
    resume: bool = True,
    from_supernet: Path | None = None,
    progress: bool = True,
    provenance: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Trains ``spec`` into ``out_dir`` (see the module docstring) and returns the result.

    Args:
        data: the data block (``name``, ``options``, ``data_seed``, ``test_fraction``; a name
            alone is fine): its fields win over ``recipe.data``'s, and the resolved block is what
            ``recipe.yaml`` records. ``{}`` trains on ``recipe.data``.
        device: ``auto | cpu | cuda | cuda:N``; a GPU that is not there raises `DeviceError`.
        resume: continue from ``checkpoints/last.pt`` (and leave a finished run as it is); False
            starts afresh, replacing what the folder held.
        from_supernet: start from the weights a supernet checkpoint holds for ``spec``
            (`evaluators.supernet.train.load_supernet`); the spec must be in its space.
        progress: show progress on stderr (rank 0 only).
        provenance: where the spec came from (run, trial), copied into ``train_record.json``.

    Bad input (recipe, data, checkpoint that does not match) raises `TrainError`, one line.
    """
    out_dir = Path(out_dir)
    layout = Layout(out_dir)
    # a recipe built in Python skipped the file's checks: the same rules hold for it
    recipe = recipe_from_dict(recipe_to_dict(recipe), "recipe")
    if data:
        recipe = replace(recipe, data=data_from_dict(dict(data), "data", base=recipe.data))
    kind = _task_kind(spec, recipe)
    check_mixing(recipe, spec.input, task=kind.name)
    ranks = distributed.current()
    dev = torch.device(distributed.rank_device(device, ranks))
    if resume and layout.record.is_file():
        return _finished(layout, spec, recipe)
    splits = load_splits(spec.input, recipe.data, kind, spec)
    with contextlib.ExitStack() as stack:
        if ranks.rank == 0:  # the one writer of the folder
            stack.enter_context(folder_lock(out_dir))
        return _train(
            spec,
            layout,
            recipe,
            splits,
            dev,
            ranks,
            resume,
            from_supernet,
            progress,
            provenance,
            kind,
        )


def _task_kind(spec: ArchSpec, recipe: TrainRecipe) -> TaskKind:
    """The recipe's task, or the one the spec's head serves; a head that does not fit the
    task is one line. Label smoothing off a cross-entropy task is ignored, with a warning
    when the recipe changed it from its default."""
    task = recipe.task if recipe.task is not None else infer(spec)
    problem = mismatch(task, spec.head.name)
    if problem:
        raise TrainError(f"recipe: {problem}")
    kind = get(task)
    if not kind.smoothing and recipe.label_smoothing not in (0.0, TrainRecipe().label_smoothing):
        log.warning(
            "label_smoothing %g ignored: it applies to classification and causal_lm, not %s",
            recipe.label_smoothing,
            kind.name,
        )
    return kind


def _train(
    spec: ArchSpec,
    layout: Layout,
    recipe: TrainRecipe,
    splits: Splits,
    dev: torch.device,
    ranks: distributed.Ranks,
    resume: bool,
    from_supernet: Path | None,
    progress: bool,
    provenance: Mapping[str, Any] | None,
    kind: TaskKind,
) -> TrainResult:
    """`train_spec` once the data is loaded and the folder is this process's to write."""
    state = _read_last(layout, spec, recipe) if resume and layout.last.is_file() else None
    if state is None and ranks.rank == 0:
        _clear(layout)  # a fresh start: nothing of an earlier run may mix into this one
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the caller's RNG is left as it was
        torch.manual_seed(recipe.seed)
        start = None if state is not None else _initial_model(spec, recipe, from_supernet)
        trainer = Trainer(spec, recipe, splits, dev, ranks, start, kind)
        if state is not None:
            trainer.load(state)
        if ranks.many:
            import torch.distributed as dist

            dist.barrier()  # every rank has read last.pt before rank 0 may replace it
        if ranks.rank == 0:
            write_atomic(layout.spec, spec.to_json())
            write_atomic(layout.recipe, yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
        done = trainer.run(layout, quiet=not progress or ranks.rank != 0)
        test = trainer.test(layout)
    record = {
        "spec_id": spec.id,
        "data": {
            **recipe_to_dict(recipe)["data"],
            "source": splits.source,
            "test_from": splits.test_from,
            "sizes": splits.sizes(),
        },
        "seed": recipe.seed,
        "device": str(dev),
        "ranks": ranks.world,
        "amp": recipe.amp,
        "recipe": recipe_to_dict(recipe),
        "params": count_params(trainer.model),
        "task": kind.name,
        "primary_metric": kind.primary,
        "higher_is_better": kind.higher_is_better,
        "best_epoch": done.best_epoch,
        "best_val": done.best_val,
        "best_val_metrics": done.best_metrics,
        "best_val_top1": (done.best_metrics or {}).get("top1"),
        "test": test,
        "test_top1": test.get("top1"),
        "test_loss": test.get("loss"),
        "epochs_run": done.epoch,
        "stopped_early": done.stopped_early,
        "seconds": done.seconds,
        "from_supernet": None if from_supernet is None else str(from_supernet),
        "source": dict(provenance) if provenance else None,
        "versions": {"torch": torch.__version__},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if ranks.rank == 0:
        write_json(layout.record, record)
    return _result(layout.root, record, already_done=False)


def load_trained(out_dir: Path) -> tuple[ArchSpec, nn.Module]:
    """The spec of a training folder and its model with the best weights (the EMA's when EMA
    was on), in eval mode on the CPU."""
    from search_space.declare.loader import load_spec

    layout = Layout(Path(out_dir))
    for path in (layout.spec, layout.best):
        if not path.is_file():
            raise TrainError(f"{path}: missing; is {out_dir} a 'mixnas train' output folder?")
    spec = load_spec(layout.spec)
    model = build_model(spec)
    load_weights(model, load_tensors(layout.best, "weights file"), layout.best)
    return spec, model.eval()


# -- setting up --------------------------------------------------------------------------------


def _finished(layout: Layout, spec: ArchSpec, recipe: TrainRecipe) -> TrainResult:
    try:
        record = json.loads(layout.record.read_text())
    except (OSError, ValueError) as err:
        raise TrainError(f"{layout.record}: not a readable training record ({err})") from None
    _check_same(layout.record, record.get("spec_id"), record.get("recipe"), spec, recipe)
    return _result(layout.root, record, already_done=True)


def _result(out_dir: Path, record: Mapping[str, Any], *, already_done: bool) -> TrainResult:
    return TrainResult(
        out_dir=out_dir,
        best_val_top1=record["best_val_top1"],
        test_top1=record["test_top1"],
        epochs_run=int(record["epochs_run"]),
        stopped_early=bool(record["stopped_early"]),
        seconds=float(record["seconds"]),
        already_done=already_done,
        # a record written before the task kinds: classification, top-1
        task=record.get("task", CLASSIFICATION),
        primary=record.get("primary_metric", "top1"),
        best_val=record.get("best_val", record["best_val_top1"]),
        test=record.get("test", {"top1": record["test_top1"], "loss": record.get("test_loss")}),
    )


def _check_same(path: Path, spec_id: Any, stored: Any, spec: ArchSpec, recipe: TrainRecipe) -> None:
    """A folder continues only the training it holds: the same spec and recipe."""
    if spec_id != spec.id:
        raise TrainError(
            f"{path}: holds the training of spec {spec_id}, not of {spec.id}; use another "
            "output folder"
        )
    old, new = outcome(stored or {}), outcome(recipe_to_dict(recipe))
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed[:3])
        raise TrainError(
            f"{path}: was written with another recipe ({shown}); use the same recipe, another "
            "output folder, or start afresh (--restart)"
        )


def _read_last(layout: Layout, spec: ArchSpec, recipe: TrainRecipe) -> dict[str, Any]:
    state = load_tensors(layout.last, "training checkpoint")
    if state.get("format") != FORMAT:
        raise TrainError(f"{layout.last}: not a training checkpoint of format {FORMAT}")
    _check_same(layout.last, state.get("spec_id"), state.get("recipe"), spec, recipe)
    return state


def _clear(layout: Layout) -> None:
    for path in (layout.record, layout.last, layout.best):
        path.unlink(missing_ok=True)


def _initial_model(spec: ArchSpec, recipe: TrainRecipe, from_supernet: Path | None) -> nn.Module:
    """The spec's model, seeded, or holding the weights a supernet inherits to it."""
    model = build_model(spec, seed=recipe.seed, drop_path_rate=recipe.drop_path_rate)
    if from_supernet is None:
        return model
    from evaluators.supernet.train import load_supernet

    supernet, _ = load_supernet(Path(from_supernet))
    if not supernet.space.contains(spec, check_constraints=False):
        name = getattr(supernet.space.decl, "name", "") or "its space"
        raise TrainError(
            f"{from_supernet}: spec {spec.id} is not in the supernet's space ({name}); allowed: "
            "a spec of that space (one its search found), or train from scratch"
        )
    load_weights(model, supernet.extract(spec).state_dict(), Path(from_supernet))
    return model


__all__ = ["TrainResult", "load_trained", "train_spec"]
