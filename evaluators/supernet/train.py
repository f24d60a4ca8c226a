"""Training the supernet, resumable, and measuring a subnet with inherited weights.

Recipes (`RecipeConfig.recipe`):

* ``sandwich``: every step trains the largest subnet, the smallest and ``num_random`` random
  subnets, accumulating the gradients into one optimizer step (Yu & Huang, "Universally
  Slimmable Networks and Improved Training Techniques", ICCV 2019; BigNAS, Yu et al., ECCV
  2020). With ``distill: true`` the students learn the largest one's soft predictions (in-place
  distillation), from step ``distill_start * steps`` on (the labels before: OFA distils from a
  trained network); the default is the labels, which ranked subnets far better in
  ``bench/supernet.py`` at CPU budgets (see docs/supernet.md).
* ``spos``: one uniformly sampled subnet per step on the labels (Guo et al., "Single Path
  One-Shot Neural Architecture Search with Uniform Sampling", ECCV 2020): the baseline.

Either recipe can shrink progressively (``progressive``, OFA; `evaluators.supernet.schedule`),
augment its batches (``augment``) and prepare them in ``loader_workers`` processes
(`evaluators.supernet.batches`); neither the loader processes nor resuming change the result.
With ``ema: d`` the trained supernet is the exponential moving average of the weights over the
optimizer updates (decay ``d`` per update; torch's `AveragedModel`), as BigNAS and timm's
``ModelEma`` do: a subnet's inherited weights then depend less on which paths the last few
updates happened to train.

Determinism and resume: every random choice of step ``t`` (the subnets, the batch order of its
epoch) derives from ``(seed, t)`` alone, so a run resumed from the checkpoint of step ``t``
continues exactly as the uninterrupted run would have. The checkpoint (weights, optimizer state,
step, loss history, config, and whatever the caller adds, e.g. the space declaration) is written
every ``checkpoint_every`` steps and at the end, atomically (temporary file, then rename), and read
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from evaluators.data import Dataset
from evaluators.supernet.batches import AUGMENTATIONS, step_batches
from evaluators.supernet.network import Supernet, recalibrate
from evaluators.supernet.schedule import subnets_of_step
from search_space.errors import MixnasError
from search_space.spec import ArchSpec

RECIPES = ("sandwich", "spos")
EXTREMES = ("per_step", "global")
UPDATES = ("accumulate", "each")
CHOICES = {"recipe": RECIPES, "extremes": EXTREMES, "augment": AUGMENTATIONS, "updates": UPDATES}
# fields that change how fast a run goes, not what it computes: a resume may change them
NEUTRAL = ("loader_workers", "checkpoint_every")
FORMAT = 1
# progress hook: (steps done, total steps, that step's mean loss)
Progress = Callable[[int, int, float], None]


class SupernetError(MixnasError, ValueError):
    """A supernet option, checkpoint or config is invalid; the message is one line."""


@dataclass(frozen=True)
class RecipeConfig:
    """How the supernet trains (see the module docstring); every field has a default."""

    recipe: str = "sandwich"
    steps: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    num_random: int = 2
    distill: bool = False  # measured: in-place distillation hurt ranking at CPU budgets (docs)
    distill_start: float = 0.0  # fraction of the steps before distillation starts (labels first)
    extremes: str = "per_step"
    updates: str = "accumulate"
    grad_clip: float = 1.0
    warmup_steps: int = 0
    progressive: float = 0.0  # fraction of the steps spent shrinking progressively (0: off)
    ema: float = 0.0  # decay per optimizer update of the weights' moving average (0: off)
    augment: str = "none"
    loader_workers: int = 0  # processes preparing batches ahead (0: in the training process)
    checkpoint_every: int = 50
    seed: int = 0

    @staticmethod
    def from_dict(data: Mapping[str, Any], where: str = "supernet") -> RecipeConfig:
        """Checks types and ranges; errors name ``where.field``, the value and what is allowed."""
        known = {f.name: f for f in fields(RecipeConfig)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SupernetError(f"{where}.{unknown[0]}: unknown; allowed: {', '.join(known)}")
        out: dict[str, Any] = {}
        for key, value in data.items():
            default = getattr(RecipeConfig(), key)
            if key in CHOICES:
                allowed = CHOICES[key]
                if value not in allowed:
                    raise SupernetError(
                        f"{where}.{key}: must be one of {list(allowed)} (got {value!r})"
                    )
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise SupernetError(f"{where}.{key}: must be true or false (got {value!r})")
            elif isinstance(default, int):
                low = 0 if key in ("num_random", "warmup_steps", "seed", "loader_workers") else 1
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise SupernetError(
                        f"{where}.{key}: must be an integer >= {low} (got {value!r})"
                    )
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise SupernetError(f"{where}.{key}: must be a number >= 0 (got {value!r})")
            elif key in ("progressive", "distill_start") and value > 1:
                raise SupernetError(f"{where}.{key}: must be a fraction in [0, 1] (got {value!r})")
            elif key == "ema" and value >= 1:
                raise SupernetError(
                    f"{where}.{key}: must be a decay in [0, 1), 0 for off (got {value!r})"
                )
            out[key] = value
        return RecipeConfig(**out)


def _lr(cfg: RecipeConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / cfg.steps))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a kill leaves the old checkpoint or the new one, never half of one


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise SupernetError(f"{path}: not a readable supernet checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SupernetError(f"{path}: not a supernet checkpoint of format {FORMAT}")
    return state


def train_supernet(
    supernet: Supernet,
    data: Dataset,
    cfg: RecipeConfig,
    *,
    checkpoint: Path | None = None,
    extra: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Trains ``supernet`` for ``cfg.steps`` steps, resuming from ``checkpoint`` if it exists.

    ``extra`` is stored in the checkpoint (the CLI stores the space declaration and the data
    settings there). ``stop_after`` ends the call after that many steps of this call (tests use it
    to simulate a kill). Returns a summary: steps, seconds (this call's CPU-side wall time), the
    loss history and whether it resumed.
    """
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    average = _moving_average(supernet, cfg.ema)
    step, history, seconds, resumed = 0, [], 0.0, False
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        if _outcome(state["config"]) != _outcome(asdict(cfg)):
            raise SupernetError(
                f"{checkpoint}: was written with a different recipe config; "
                "use a new run folder or the same config"
            )
        supernet.load_state_dict(state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        if average is not None:
            average.load_state_dict(state["ema"])
        step, history = int(state["step"]), list(state["history"])
        seconds, resumed = float(state["seconds"]), True

    def write() -> None:
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                {
                    "format": FORMAT,
                    "step": step,
                    "weights": supernet.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "seconds": seconds,
                    "config": asdict(cfg),
                    "supernet": {"seed": supernet.seed, "strict": supernet.strict},
                    **({} if average is None else {"ema": average.state_dict()}),
                    **dict(extra or {}),
                },
            )

    supernet.train()
    last = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    batches = step_batches(
        data,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        first=step,
        last=last,
        augment=cfg.augment,
        workers=cfg.loader_workers,
    )
    start = time.perf_counter()
    for x, y in batches:
        for group in optimizer.param_groups:
            group["lr"] = _lr(cfg, step)
        losses = _train_step(supernet, optimizer, cfg, step, x, y, average)
        step += 1
        history.append(float(np.mean(losses)))
        seconds += time.perf_counter() - start
        if progress is not None:
            progress(step, cfg.steps, history[-1])
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            write()
        start = time.perf_counter()  # the next batch's wait counts, the bookkeeping does not
    if average is not None and step == cfg.steps:
        _use_average(supernet, average.state_dict())  # the average is the trained supernet
    return {"steps": step, "seconds": seconds, "history": history, "resumed": resumed}


def _moving_average(supernet: Supernet, decay: float) -> AveragedModel | None:
    if not decay:
        return None
    # buffers are not averaged: batch norms are recalibrated per subnet before scoring anyway
    return AveragedModel(supernet, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


@torch.no_grad()
def _use_average(supernet: Supernet, averaged: Mapping[str, torch.Tensor]) -> None:
    """Loads the averaged parameters of an `AveragedModel` state (keys ``module.<name>``); its
    buffers are stale copies and are left out."""
    for name, param in supernet.named_parameters():
        param.copy_(averaged[f"module.{name}"])


def _outcome(config: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe fields that decide the trained weights (a resume must keep them)."""
    defaults = asdict(RecipeConfig())
    merged = {**defaults, **config}  # a checkpoint written before a field existed: its default
    return {k: v for k, v in merged.items() if k not in NEUTRAL}


def _train_step(
    supernet: Supernet,
    optimizer: torch.optim.Optimizer,
    cfg: RecipeConfig,
    step: int,
    x: torch.Tensor,
    y: torch.Tensor,
    average: AveragedModel | None = None,
) -> list[float]:
    """Forward and backward of every subnet of the step: gradients accumulate into one update
    (``updates: accumulate``), or each subnet updates the weights in turn (``each``)."""
    teacher: torch.Tensor | None = None
    # a teacher that has not learned yet teaches collapse: every subnet outputs the same
    # input-independent distribution, which zeroes the students' loss (seen at lr 0.02)
    distill = cfg.distill and step >= cfg.distill_start * cfg.steps
    losses = []
    optimizer.zero_grad(set_to_none=True)
    for k, spec in enumerate(subnets_of_step(supernet, cfg, step)):
        logits = supernet.configure(spec)(x)
        if teacher is not None and distill:
            # in-place distillation: the largest subnet's soft predictions are the targets
            loss = F.kl_div(
                F.log_softmax(logits, dim=1), F.softmax(teacher, dim=1), reduction="batchmean"
            )
        else:
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"supernet loss became {loss.item()} at step {step}")
        loss.backward()
        if k == 0 and cfg.recipe == "sandwich":
            teacher = logits.detach()
        losses.append(loss.item())
        if cfg.updates == "each":
            _update(supernet, optimizer, cfg, average)
    if cfg.updates == "accumulate":
        _update(supernet, optimizer, cfg, average)
    return losses


def _update(
    supernet: Supernet,
    optimizer: torch.optim.Optimizer,
    cfg: RecipeConfig,
    average: AveragedModel | None,
) -> None:
    if cfg.grad_clip:
        nn.utils.clip_grad_norm_(supernet.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if average is not None:
        average.update_parameters(supernet)


def evaluate_subnet(
    supernet: Supernet,
    spec: ArchSpec,
    data: Dataset,
    *,
    recalibration_batches: int = 8,
    batch_size: int = 64,
    eval_batch_size: int = 256,
) -> dict[str, float]:
    """Validation ``top1`` (percent) and ``loss`` of ``spec`` with inherited weights, after
    recalibrating its batch norm (if any) on ``recalibration_batches`` training batches."""
    template = supernet.configure(spec).template()
    return score_model(
        supernet,
        template,
        data,
        recalibration_batches=recalibration_batches,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
    )


@torch.no_grad()
def score_model(
    model: nn.Module,
    norms_of: nn.Module,
    data: Dataset,
    *,
    recalibration_batches: int = 8,
    batch_size: int = 64,
    eval_batch_size: int = 256,
) -> dict[str, float]:
    """Recalibrates the batch norms inside ``norms_of`` by running ``model`` (the same module, or
    a supernet running it), then measures ``model`` on the validation split."""
    n = len(data.y_train)
    size = max(1, min(batch_size, n))
    gen = torch.Generator().manual_seed(0)  # the same recalibration batches for every subnet
    order = torch.randperm(n, generator=gen)
    batches = [
        data.x_train[order[i * size : (i + 1) * size]]
        for i in range(min(recalibration_batches, max(1, n // size)))
    ]
    recalibrate(model, norms_of, batches)
    model.eval()
    total, correct = 0.0, 0
    for begin in range(0, len(data.y_val), eval_batch_size):
        logits = model(data.x_val[begin : begin + eval_batch_size])
        target = data.y_val[begin : begin + eval_batch_size]
        total += F.cross_entropy(logits, target, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == target).sum())
    count = max(1, len(data.y_val))
    return {"top1": 100.0 * correct / count, "loss": total / count}


def load_supernet(path: Path) -> tuple[Supernet, dict[str, Any]]:
    """The trained supernet a checkpoint holds (its space declaration is stored in it), and the
    checkpoint's other fields (``data``, ``config``, ``history``, ...)."""
    from search_space.declare.loader import space_from_declaration

    state = load_checkpoint(path)
    if not isinstance(state.get("space"), dict):
        raise SupernetError(f"{path}: the checkpoint holds no space declaration")
    space = space_from_declaration(state["space"], f"{path} (space)")
    options = state.get("supernet", {})
    supernet = Supernet(
        space, seed=int(options.get("seed", 0)), strict=bool(options.get("strict", True))
    )
    try:
        supernet.load_state_dict(state.pop("weights"))
        if "ema" in state and int(state["step"]) == int(state["config"]["steps"]):
            # a finished run's result is its moving average (the raw weights are for resuming)
            _use_average(supernet, state.pop("ema"))
    except (RuntimeError, KeyError) as err:
        first = str(err).splitlines()[0]
        raise SupernetError(f"{path}: weights do not fit the stored space ({first})") from None
    return supernet.eval(), state
