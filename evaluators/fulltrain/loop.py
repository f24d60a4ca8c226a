"""The epochs of a full training run: `Trainer` holds the model, optimizer, scaler and EMA.

Who calls what, when: `evaluators.fulltrain.run.train_spec` builds a `Trainer`, loads
``checkpoints/last.pt`` into it when resuming (`Trainer.load`), calls `Trainer.run` for the epochs
and `Trainer.test` once at the end.

The recipe (`evaluators.fulltrain.recipe`): AdamW (no weight decay on biases, norms and other 1-D
parameters, as timm's ``param_groups_weight_decay``), a per-step cosine schedule with linear
warm-up, label smoothing, gradient clipping, optional mixup/CutMix (`evaluators.fulltrain.augment`)
and an EMA of the weights (torch's `AveragedModel`, buffers included; when on, the EMA is what is
evaluated, chosen as best and tested). The task's kind (`evaluators.task_kinds`) gives the loss
and the metrics. Validation every ``eval_every`` epochs and at the last; the best value of the
task's primary metric (validation top-1 for classification; miou, psnr...) in its direction
picks ``best.pt``; ``patience`` evaluated epochs without a ``min_delta`` gain in it stop the run.
The test split is evaluated once, at the end, with the best weights.

Resume: ``checkpoints/last.pt`` is written at the end of every epoch and holds everything the next
epoch depends on: weights, optimizer, loss scaler, EMA, epoch and step (the schedule is a function
of the step), early-stopping state, metrics history and the global RNG state (drop path). The
other random draws are made afresh each epoch from generators seeded by ``(seed, epoch)``: the
data order and the mixing. So a run killed at any instant, even mid-epoch, and started again
redoes the cut-off epoch exactly: on the CPU its final weights are bit-identical to those of an
uninterrupted run. A folder that holds a finished run (``train_record.json``) is left as it is.

Devices: ``device`` is ``auto | cpu | cuda | cuda:N`` (`evaluators.devices`; ``auto`` is the CPU
without a GPU), ``amp: off | bf16 | fp16`` autocasts the forward passes (fp16 adds a loss scaler).

Many processes: inside a torch.distributed process group (``mixnas train --nproc N`` starts one
with torchrun; `evaluators.supernet.distributed`), every rank takes its rows of each global batch
of ``batch_size``, scales its loss by its share, and the gradients are summed over the ranks before
each update (`all_reduce_grads`), so every rank makes the same update. Batch-norm statistics are
each rank's own (no SyncBatchNorm) and are taken from rank 0 before each evaluation; evaluation is
shared among the ranks and summed. Rank 0 alone writes the folder; any number of ranks resumes it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from evaluators.devices import autocast, grad_scaler
from evaluators.fulltrain.augment import BatchMixer, soft_cross_entropy
from evaluators.fulltrain.checkpoint import (
    FORMAT,
    Layout,
    MetricsLog,
    load_tensors,
    metric_columns,
    rng_state,
    save_tensors,
    set_rng_state,
)
from evaluators.fulltrain.progress import EpochProgress
from evaluators.fulltrain.recipe import (
    TrainError,
    TrainRecipe,
    recipe_to_dict,
)
from evaluators.fulltrain.splits import Splits
from evaluators.supernet import distributed
from evaluators.task_kinds import CLASSIFICATION, TaskKind, get
from search_space import build_model
from search_space.spec import ArchSpec

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """The training state besides the tensors: what last.pt holds in plain numbers."""

    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    best_val: float | None = None  # the best value of the task's primary metric
    best_epoch: int = 0
    patience_value: float | None = None  # the value the last significant gain reached
    patience_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    best_metrics: dict[str, float] | None = None  # every validation metric at the best epoch

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunState:
        """The state a checkpoint holds; one written before the task kinds named the primary
        metric top-1 (``best_val_top1``, ``patience_top1``)."""
        renamed = {"best_val_top1": "best_val", "patience_top1": "patience_value"}
        state = cls(**{renamed.get(k, k): v for k, v in values.items()})
        if state.best_metrics is None and state.best_val is not None and "best_val_top1" in values:
            state.best_metrics = {"top1": state.best_val}
        return state


def load_weights(model: nn.Module, weights: Mapping[str, Any], path: Path) -> None:
    """Loads ``weights`` into ``model``; weights of another shape are one line naming ``path``."""
    try:
        model.load_state_dict(dict(weights))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise TrainError(f"{path}: the weights do not fit the spec's model ({first})") from None


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


# -- the loop ----------------------------------------------------------------------------------


class Trainer:
    """One run's model, optimizer, scaler and EMA, and the epochs that train them."""

    def __init__(
        self,
        spec: ArchSpec,
        recipe: TrainRecipe,
        splits: Splits,
        device: torch.device,
        ranks: distributed.Ranks,
        model: nn.Module | None,
        kind: TaskKind | None = None,
    ) -> None:
        self.spec, self.recipe, self.splits = spec, recipe, splits
        self.kind = kind if kind is not None else get(CLASSIFICATION)
        self.device, self.ranks = device, ranks
        if model is None:  # resuming: last.pt replaces the weights, skip the supernet
            model = build_model(spec, seed=recipe.seed, drop_path_rate=recipe.drop_path_rate)
        self.model = model.to(device)
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.model, recipe.weight_decay), lr=recipe.lr
        )
        self.scaler = grad_scaler(device, recipe.amp)
        self.ema: AveragedModel | None = None
        if recipe.ema_decay:
            self.ema = AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True
            )
        n = len(splits.y_train)
        self.batch = min(recipe.batch_size, n)
        if self.batch < ranks.world:
            raise TrainError(
                f"batch_size: a batch of {self.batch} rows cannot give each of {ranks.world} "
                f"ranks a row; use at least {ranks.world}"
            )
        self.steps_per_epoch = n // self.batch  # whole batches: batch norm needs > 1 row
        self.total_steps = recipe.epochs * self.steps_per_epoch
        self.warmup_steps = round(recipe.warmup_epochs * self.steps_per_epoch)
        if self.warmup_steps >= self.total_steps:
            log.warning(
                "warmup_epochs (%g) >= epochs (%d): the whole run is warm-up, lr never reaches "
                "its peak or decays",
                recipe.warmup_epochs,
                recipe.epochs,
            )
        self.state = RunState()
        self.history: list[dict[str, Any]] = []

    # -- checkpoint ----------------------------------------------------------------------------
    def load(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        set_rng_state(state["rng"])
        self.state = RunState.from_dict(state["progress"])
        self.history = [dict(row) for row in state["history"]]

    def save_last(self, layout: Layout) -> None:
        state: dict[str, Any] = {
            "format": FORMAT,
            "spec_id": self.spec.id,
            "recipe": recipe_to_dict(self.recipe),
            "epoch": self.state.epoch,
            "step": self.state.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "progress": self.state.as_dict(),
            "history": self.history,
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        save_tensors(layout.last, state)

    @property
    def evaluated(self) -> nn.Module:
        """The module that is evaluated and saved as best: the EMA's when on."""
        return self.model if self.ema is None else self.ema.module

    # -- epochs --------------------------------------------------------------------------------
    def run(self, layout: Layout, *, quiet: bool) -> RunState:
        r, s = self.recipe, self.state
        columns = self.kind.columns
        log = MetricsLog(layout, metric_columns(columns))
        if self.ranks.rank == 0:
            log.reset(self.history)
        bar = EpochProgress(
            f"train {self.spec.id[:8]}",
            r.epochs,
            self.steps_per_epoch,
            start_epoch=s.epoch,
            quiet=quiet,
            metric=f"val_{self.kind.primary}",
        )
        if s.epoch:
            bar.note(f"resuming {layout.root} after epoch {s.epoch}")
        try:
            while s.epoch < r.epochs and not s.stopped_early:
                tick = time.perf_counter()
                train_loss, lr = self._train_epoch(s.epoch, bar)
                s.epoch += 1
                row: dict[str, Any] = {
                    "epoch": s.epoch,
                    "lr": lr,
                    "train_loss": train_loss,
                    **{f"val_{name}": None for name in columns},
                }
                if s.epoch % r.eval_every == 0 or s.epoch == r.epochs:
                    metrics = self.evaluate(self.splits.x_val, self.splits.y_val)
                    row.update({f"val_{name}": metrics[name] for name in columns})
                    self._track(metrics, layout)
                row["seconds"] = time.perf_counter() - tick
                s.seconds += row["seconds"]
                self.history.append(row)
                if self.ranks.rank == 0:
                    self.save_last(layout)
                    log.append(row)
                bar.epoch(s.epoch, row)
        finally:
            bar.close()
        return s

    def _track(self, metrics: Mapping[str, float], layout: Layout) -> None:
        """Best checkpoint (a strictly better primary metric) and early stopping."""
        r, s, kind = self.recipe, self.state, self.kind
        value = float(metrics[kind.primary])
        if kind.better(value, s.best_val):
            s.best_val, s.best_epoch = value, s.epoch
            s.best_metrics = {k: float(v) for k, v in metrics.items()}
            if self.ranks.rank == 0:
                save_tensors(layout.best, self.evaluated.state_dict())
        if kind.better(value, s.patience_value, r.min_delta):
            s.patience_value, s.patience_epoch = value, s.epoch
        elif r.patience and s.epoch - s.patience_epoch >= r.patience:
            s.stopped_early = True

    def _train_epoch(self, epoch: int, bar: EpochProgress) -> tuple[float, float]:
        """One epoch; returns its mean training loss (over the global batches) and last lr."""
        r, s = self.recipe, self.state
        seed = [r.seed, epoch]
        # data order and mixing from (seed, epoch) alone: a resumed epoch draws the same
        order = torch.randperm(
            len(self.splits.y_train), generator=torch.Generator().manual_seed(_mix(r.seed, epoch))
        )
        mixer = BatchMixer(r, self.splits.num_classes, np.random.default_rng(seed))
        # label smoothing belongs to the cross-entropy tasks; the others ignore it
        smoothing = r.label_smoothing if self.kind.smoothing else 0.0
        self.model.train()
        total, lr = 0.0, r.lr
        for x, y in self._batches(order):
            lr = self._lr(s.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            x, targets = mixer(x, y)
            with autocast(self.device, r.amp):
                logits = self.model(x)
            if targets is None:
                loss = self.kind.loss(logits, y, label_smoothing=smoothing)
            else:
                loss = soft_cross_entropy(logits, targets)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainError(
                    f"training loss became {value} at epoch {epoch + 1}, step {s.step}; "
                    "lower lr, or turn amp off"
                )
            share = len(y) / self.batch  # this rank's rows of the global batch
            self._update(loss * share if self.ranks.many else loss)
            total += value * share
            s.step += 1
            bar.step(value)
        if self.ranks.many:
            total = distributed.sum_over_ranks([total], self.device)[0]
        return total / max(1, self.steps_per_epoch), lr

    def _update(self, loss: torch.Tensor) -> None:
        r = self.recipe
        self.optimizer.zero_grad(set_to_none=True)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        if self.ranks.many:  # the gradient of the global batch, the same on every rank
            distributed.all_reduce_grads(list(self.model.parameters()))
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        if r.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), r.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when a gradient overflowed float16
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def _batches(self, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's rows of each global batch of the epoch, in ``order``."""
        lo = self.ranks.rank * self.batch // self.ranks.world
        hi = (self.ranks.rank + 1) * self.batch // self.ranks.world
        rows = [
            order[i * self.batch : (i + 1) * self.batch][lo:hi].tolist()
            for i in range(self.steps_per_epoch)
        ]
        x, y = self.splits.x_train, self.splits.y_train
        if self.recipe.num_workers == 0:
            for index in rows:
                yield x[index], y[index]
            return
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(
            TensorDataset(x, y),
            batch_sampler=rows,
            num_workers=self.recipe.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # the workers' seeds: not from the global RNG
        )
        yield from loader

    def _lr(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at the last step."""
        r = self.recipe
        if step < self.warmup_steps:
            return r.lr * (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return r.min_lr + (r.lr - r.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, module: nn.Module | None = None
    ) -> dict[str, float]:
        """The task's metrics on ``x, y`` (classification: top-1 in percent and plain
        cross-entropy), shared among the ranks: each adds up its rows, the sums are added."""
        module = self.evaluated if module is None else module
        if self.ranks.many:
            _broadcast_buffers(module)  # rank 0's batch-norm statistics on every rank
        module.eval()
        n, world, rank = len(y), self.ranks.world, self.ranks.rank
        lo, hi = rank * n // world, (rank + 1) * n // world
        metrics = self.kind.metrics(self.spec.input.num_classes)
        size = self.recipe.eval_batch_size
        for begin in range(lo, hi, size):
            end = min(begin + size, hi)
            with autocast(self.device, self.recipe.amp):
                output = module(x[begin:end].to(self.device))
            metrics.update(output.float(), y[begin:end].to(self.device))
        if self.ranks.many:
            sums = distributed.sum_over_ranks(metrics.sums.tolist(), self.device)
            metrics.sums = torch.tensor(sums, dtype=torch.float64)
        out = metrics.result()
        if self.kind.name == CLASSIFICATION:
            out = {"top1": out["top1"], "loss": out["loss"]}  # as this loop always reported
        return {**out, **self.kind.baseline(x, y)}

    def test(self, layout: Layout) -> dict[str, float | None]:
        """The best weights on the test split (None values without a test split)."""
        if self.splits.x_test is None or self.splits.y_test is None:
            return dict.fromkeys(self.kind.columns)
        if self.ranks.many:
            import torch.distributed as dist

            dist.barrier()  # rank 0 has written best.pt
        model = build_model(self.spec).to(self.device)
        load_weights(model, load_tensors(layout.best, "weights file"), layout.best)
        return dict(self.evaluate(self.splits.x_test, self.splits.y_test, model))


def _broadcast_buffers(module: nn.Module) -> None:
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer, 0)


def _mix(seed: int, epoch: int) -> int:
    """One 63-bit seed from two numbers (numpy's SeedSequence), for a torch generator."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)
