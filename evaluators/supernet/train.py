"""Training the supernet, resumable, and measuring a subnet with inherited weights.

Recipes (`RecipeConfig.recipe`):

* ``sandwich``: every step trains the largest subnet, the smallest and ``num_random`` random
  subnets, accumulating the gradients into one optimizer step (Yu & Huang, "Universally
  Slimmable Networks and Improved Training Techniques", ICCV 2019; BigNAS, Yu et al., ECCV
  2020). With ``distill: true`` the students learn the largest one's soft predictions (in-place
  distillation), from step ``distill_start * steps`` on (the labels before: OFA distils from a
  trained network); the default is the labels, which ranked subnets far better in
  ``bench/supernet.py`` at CPU budgets (see docs/supernet.md).
* ``spos`` (the default): one uniformly sampled subnet per step on the labels (Guo et al.,
  "Single Path One-Shot Neural Architecture Search with Uniform Sampling", ECCV 2020). It ranked
  subnets at least as well as every sandwich variant in ``bench/supernet.py`` (docs/supernet.md).
* ``multi_arch``: multi-architectural sampling (Liao et al., "Searching for Efficient Multi-Stage
  Vision Transformers", ViT-ResNAS, 2021): the batch is split into ``num_archs`` chunks and each
  chunk trains its own random subnet, gradients accumulated into one update. A step costs about
  one SPOS step (every sample passes through one subnet) but trains ``num_archs`` subnets.

Any recipe can shrink progressively (``progressive``, OFA; `evaluators.supernet.schedule`),
augment its batches (``augment``) and prepare them in ``loader_workers`` processes
(`evaluators.supernet.batches`); neither the loader processes nor resuming change the result.
With ``ema: d`` the trained supernet is the exponential moving average of the weights over the
optimizer updates (decay ``d`` per update; torch's `AveragedModel`), as BigNAS and timm's
``ModelEma`` do: a subnet's inherited weights then depend less on which paths the last few
updates happened to train.

Devices: ``device`` (``auto | cpu | cuda | cuda:N``, `evaluators.devices`) is where the weights and
batches live; ``auto`` is the CPU without a GPU, and there the results are bit-identical to a
run without the option. ``amp`` (``off | bf16 | fp16``) runs the forward passes under autocast;
fp16 adds a loss scaler (`torch.amp.GradScaler`, kept in the checkpoint). The weights, their
gradients and the optimizer stay float32.

Many processes: inside a torch.distributed process group (torchrun or Ray Train), every rank
trains the same subnets on its rows of the global batch (``batch_size``) and the gradients are
summed before each update (`evaluators.supernet.distributed`); rank 0 writes the checkpoint.

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
from evaluators.devices import AMP_MODES, DEVICE_PATTERN, DeviceError, autocast, grad_scaler
from evaluators.supernet import distributed
from evaluators.supernet.batches import AUGMENTATIONS, batch_size_of, step_batches
from evaluators.supernet.network import Supernet, recalibrate
from evaluators.supernet.schedule import subnets_of_step
from evaluators.task_kinds import CLASSIFICATION, TaskKind
from search_space.errors import MixnasError
from search_space.spec import ArchSpec

RECIPES = ("spos", "sandwich", "multi_arch")
EXTREMES = ("per_step", "global")
UPDATES = ("accumulate", "each")
CHOICES = {
    "recipe": RECIPES,
    "extremes": EXTREMES,
    "augment": AUGMENTATIONS,
    "updates": UPDATES,
    "amp": AMP_MODES,
}
# fields that change how fast or where a run goes, not what it computes: a resume may change them
# (another device computes the same steps, up to floating-point rounding)
NEUTRAL = ("loader_workers", "checkpoint_every", "device")
FORMAT = 1
# progress hook: (steps done, total steps, that step's mean loss)
Progress = Callable[[int, int, float], None]


class SupernetError(MixnasError, ValueError):
    """A supernet option, checkpoint or config is invalid; the message is one line."""


@dataclass(frozen=True)
class RecipeConfig:
    """How the supernet trains (see the module docstring); every field has a default."""

    recipe: str = "spos"  # ranked best in bench/supernet.py (docs/supernet.md)
    steps: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    num_random: int = 2
    num_archs: int = 4  # multi_arch: subnets per step, one per chunk of the batch
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
    device: str = "auto"  # auto | cpu | cuda | cuda:N (evaluators.devices)
    amp: str = "off"  # off | bf16 | fp16: autocast of the forward passes

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
            elif key == "device":
                if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
                    raise SupernetError(
                        f"{where}.{key}: must be auto, cpu, cuda or cuda:N (got {value!r})"
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
        cfg = RecipeConfig(**out)
        if cfg.recipe == "multi_arch" and cfg.num_archs > cfg.batch_size:
            raise SupernetError(
                f"{where}.num_archs: each subnet needs at least one row of the batch: at most "
                f"batch_size ({cfg.batch_size}) (got {cfg.num_archs})"
            )
        return cfg


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
    to simulate a kill). The supernet is moved to ``cfg.device`` and left there. Inside a
    torch.distributed process group every rank calls this with the same arguments; rank 0 alone
    writes the checkpoint and reports progress. Returns a summary: steps, seconds (this call's
    wall time), the loss history, whether it resumed, the device and the number of ranks.
    """
    ranks = distributed.current()
    run = _runtime(supernet, data, cfg, ranks)
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    average = _moving_average(supernet, cfg.ema)
    step, history, seconds, resumed = 0, [], 0.0, False
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        _check_resumable(checkpoint, state["config"], cfg)
        supernet.load_state_dict(state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        if average is not None:
            average.load_state_dict(state["ema"])
        if run.scaler is not None and "scaler" in state:
            run.scaler.load_state_dict(state["scaler"])
        step, history = int(state["step"]), list(state["history"])
        seconds, resumed = float(state["seconds"]), True
    if ranks.many:
        import torch.distributed as dist

        dist.barrier()  # every rank has read the checkpoint before rank 0 may write a new one

    def write() -> None:
        if checkpoint is not None and ranks.rank == 0:
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
                    **({} if run.scaler is None else {"scaler": run.scaler.state_dict()}),
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
        rows=run.rows,
    )
    start = time.perf_counter()
    for x, y in batches:
        for group in optimizer.param_groups:
            group["lr"] = _lr(cfg, step)
        losses = _train_step(supernet, optimizer, cfg, step, x, y, average, run)
        step += 1
        history.append(float(np.mean(losses)))
        seconds += time.perf_counter() - start
        if progress is not None and ranks.rank == 0:
            progress(step, cfg.steps, history[-1])
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            write()
        start = time.perf_counter()  # the next batch's wait counts, the bookkeeping does not
    if average is not None and step == cfg.steps:
        _use_average(supernet, average.state_dict())  # the average is the trained supernet
    return {
        "steps": step,
        "seconds": seconds,
        "history": history,
        "resumed": resumed,
        "device": str(run.device),
        "ranks": ranks.world,
    }


@dataclass(frozen=True)
class _Runtime:
    """Where and how a run computes: device, mixed precision, its ranks and their rows."""

    device: torch.device
    amp: str
    scaler: Any  # torch.amp.GradScaler for fp16, else None
    ranks: distributed.Ranks
    parts: list[distributed.Part]  # each subnet chunk's rows (one chunk unless multi_arch)
    rows: torch.Tensor | None  # this rank's rows of the global batch (None: all, in order)
    task: TaskKind  # what the subnets learn: the loss (`supernet_task`)


def _runtime(
    supernet: Supernet, data: Dataset, cfg: RecipeConfig, ranks: distributed.Ranks
) -> _Runtime:
    """Resolves the device (a GPU that is not there is a one-line error naming the field),
    moves the supernet there and shares the batch among the ranks."""
    try:
        device = torch.device(distributed.rank_device(cfg.device, ranks))
    except DeviceError as err:
        raise SupernetError(f"supernet.device: {err}") from None
    chunks = cfg.num_archs if cfg.recipe == "multi_arch" else 1
    size = batch_size_of(data, cfg.batch_size)
    if size < chunks * ranks.world:
        raise SupernetError(
            f"supernet.batch_size: a batch of {size} rows cannot give each of {ranks.world} "
            f"rank(s) a row for each of {chunks} subnet(s); use a batch of at least "
            f"{chunks * ranks.world} rows"
        )
    task = supernet_task(supernet.space)
    if cfg.distill and task.name != CLASSIFICATION:
        raise SupernetError(
            f"supernet.distill: in-place distillation teaches soft class predictions; the "
            f"space's heads learn {task.name}; allowed: distill: false"
        )
    supernet.to(device)
    # with `updates: each` every subnet's update is the mean over its own chunk
    split = cfg.recipe == "multi_arch" and cfg.updates == "accumulate"
    return _Runtime(
        device=device,
        amp=cfg.amp,
        scaler=grad_scaler(device, cfg.amp),
        ranks=ranks,
        parts=distributed.parts(size, chunks, ranks, split),
        rows=distributed.local_rows(size, chunks, ranks),
        task=task,
    )


def supernet_task(space: Any) -> TaskKind:
    """The task kind a space's subnets learn, from what its heads produce (`OpDef.output`:
    class labels, next tokens, masks or images); heads of different outputs are refused."""
    from evaluators import task_kinds
    from search_space.ops import HEADS

    decl = getattr(space, "decl", None)
    heads = [h.name for h in decl.heads] if decl is not None else ["classifier"]
    outputs = {HEADS.get(h).output for h in heads if h in HEADS}
    if len(outputs) > 1:
        raise SupernetError(
            f"space: the heads {', '.join(sorted(set(heads)))} produce different outputs "
            f"({', '.join(sorted(outputs))}); allowed: heads of one task in a supernet"
        )
    return task_kinds.get(task_kinds.for_output(outputs.pop() if outputs else None))


def _check_resumable(checkpoint: Path, stored: Mapping[str, Any], cfg: RecipeConfig) -> None:
    old, new = _outcome(stored), _outcome(asdict(cfg))
    if old != new:
        changed = sorted(k for k in new if old.get(k) != new[k])
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed[:3])
        raise SupernetError(
            f"{checkpoint}: was written with a different recipe config ({shown}); "
            "use a new run folder or the same config"
        )


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
    average: AveragedModel | None,
    run: _Runtime,
) -> list[float]:
    """Forward and backward of every subnet of the step: gradients accumulate into one update
    (``updates: accumulate``), or each subnet updates the weights in turn (``each``). Returns
    each subnet's mean loss over its rows of the global batch (the same on every rank)."""
    teacher: torch.Tensor | None = None
    # a teacher that has not learned yet teaches collapse: every subnet outputs the same
    # input-independent distribution, which zeroes the students' loss (seen at lr 0.02)
    distill = cfg.distill and step >= cfg.distill_start * cfg.steps
    x, y = x.to(run.device), y.to(run.device)  # the same tensors on the CPU
    losses = []
    optimizer.zero_grad(set_to_none=True)
    for k, spec in enumerate(subnets_of_step(supernet, cfg, step)):
        part = run.parts[k] if len(run.parts) > 1 else run.parts[0]
        whole = len(run.parts) == 1  # every subnet trains on all of this rank's rows
        xs, ys = (x, y) if whole else (x[part.lo : part.hi], y[part.lo : part.hi])
        loss: torch.Tensor | None = None
        if part.hi > part.lo:  # a rank may hold no rows of a small chunk
            with autocast(run.device, run.amp):
                logits = supernet.configure(spec)(xs)
                if teacher is not None and distill:
                    # in-place distillation: the largest subnet's soft predictions are the targets
                    loss = F.kl_div(
                        F.log_softmax(logits, dim=1),
                        F.softmax(teacher, dim=1),
                        reduction="batchmean",
                    )
                else:
                    smoothing = cfg.label_smoothing if run.task.smoothing else 0.0
                    loss = run.task.loss(logits, ys, label_smoothing=smoothing)
            if k == 0 and cfg.recipe == "sandwich":
                teacher = logits.detach()
        value = loss.item() if loss is not None else 0.0
        if run.ranks.many:  # the subnet's mean over all its rows; every rank sees the same
            value = distributed.sum_over_ranks([value * part.share], run.device)[0]
        if not math.isfinite(value):  # checked on the global value: all ranks stop together
            raise FloatingPointError(f"supernet loss became {value} at step {step}")
        if loss is not None:
            weight = part.share * part.weight
            scaled = loss if weight == 1.0 else loss * weight
            (scaled if run.scaler is None else run.scaler.scale(scaled)).backward()
        losses.append(value)
        if cfg.updates == "each":
            _update(supernet, optimizer, cfg, average, run)
    if cfg.updates == "accumulate":
        _update(supernet, optimizer, cfg, average, run)
    return losses


def _update(
    supernet: Supernet,
    optimizer: torch.optim.Optimizer,
    cfg: RecipeConfig,
    average: AveragedModel | None,
    run: _Runtime,
) -> None:
    if run.ranks.many:  # the gradient of the global batch, the same on every rank
        distributed.all_reduce_grads(list(supernet.parameters()))
    if run.scaler is not None:
        run.scaler.unscale_(optimizer)  # clip the true gradients
    if cfg.grad_clip:
        nn.utils.clip_grad_norm_(supernet.parameters(), cfg.grad_clip)
    if run.scaler is not None:
        run.scaler.step(optimizer)  # skipped when a gradient overflowed float16
        run.scaler.update()
    else:
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
    amp: str = "off",
) -> dict[str, float]:
    """The validation metrics of the space's task (`supernet_task`: ``top1`` and ``loss`` for
    classification, ``miou`` for segmentation, ``psnr`` for super-resolution, ...) of ``spec``
    with inherited weights, after recalibrating its batch norm (if any) on
    ``recalibration_batches`` training batches; on the supernet's device, under ``amp``
    autocast."""
    template = supernet.configure(spec).template()
    return score_model(
        supernet,
        template,
        data,
        recalibration_batches=recalibration_batches,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        amp=amp,
        task=supernet_task(supernet.space),
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
    amp: str = "off",
    task: TaskKind | None = None,
) -> dict[str, float]:
    """Recalibrates the batch norms inside ``norms_of`` by running ``model`` (the same module, or
    a supernet running it), then measures ``model`` on the validation split with ``task``'s
    metrics (None: classification). Both run on the
    device of ``model``'s weights (batches are moved there), under ``amp`` autocast; the batch
    norms' statistics are accumulated in float32 either way."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    n = len(data.y_train)
    size = max(1, min(batch_size, n))
    gen = torch.Generator().manual_seed(0)  # the same recalibration batches for every subnet
    order = torch.randperm(n, generator=gen)
    batches = [
        data.x_train[order[i * size : (i + 1) * size]]
        for i in range(min(recalibration_batches, max(1, n // size)))
    ]
    with autocast(device, amp):
        recalibrate(model, norms_of, [x.to(device) for x in batches])
    model.eval()
    kind = task or _classification()
    metrics = kind.metrics()
    for begin in range(0, len(data.y_val), eval_batch_size):
        with autocast(device, amp):
            out = model(data.x_val[begin : begin + eval_batch_size].to(device))
        metrics.update(out.float(), data.y_val[begin : begin + eval_batch_size].to(device))
    # the task's model-free baseline (super-resolution: the bilinear upsampling's PSNR)
    return {**metrics.result(), **kind.baseline(data.x_val, data.y_val)}


def _classification() -> TaskKind:
    from evaluators import task_kinds

    return task_kinds.get(CLASSIFICATION)


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
