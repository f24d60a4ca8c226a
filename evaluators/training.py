"""The ``train`` evaluator: a short, deterministic training run that reports validation metrics.

`ShortTraining` builds the spec's model, trains it with AdamW, a cosine learning-rate schedule and
label smoothing for a budget of ``steps``, ``seconds`` or ``epochs`` (whichever ends first when
several are given; 100 steps when none is), and reports the task's validation metrics (for
classification: ``top1``, validation accuracy in percent; ``loss``, validation cross-entropy
without smoothing; ``perplexity``, exp of ``loss``), ``train_loss`` (smoothed loss over the last
steps), ``train_seconds`` and ``steps``.

The ``task`` option says what is learnt; each task is a kind of `evaluators.task_kinds` (its
loss, metrics, data and the head output it needs). ``classification`` (the default): one label
per input, cross-entropy on the pooled classifier's logits. ``causal_lm``: next-token
prediction with a causal LM head (``lm_head``, logits ``B x L x vocab``): cross-entropy over
every position that has a next token, ``top1`` the next-token accuracy and ``perplexity`` exp of
the mean loss per token; the data are token sequences (`evaluators.tasks.language`: the ``dyck``
corpus by default, any token task, or a user's ``.npz`` of sequences). ``segmentation``: a class
per pixel with a segmentation head (``seg_head``): per-pixel cross-entropy, metrics ``top1``
(pixel accuracy), ``miou``, ``dice``, ``loss``; data ``seg_shapes`` by default.
``super_resolution``: an upscaled image with an SR head (``sr_head``): L1 loss, metrics
``psnr``, ``ssim``, ``l1``, ``loss`` and the bilinear baseline ``psnr_bilinear``; data
``sr_images`` by default at the head's scale. Label smoothing applies to the cross-entropy of
classification and causal_lm only.

Multi-fidelity schedules (successive halving, Hyperband) pass ``rungs`` (step counts): the
validation metrics at each rung go into `EvalResult.rungs`, and ``stop_at_rung`` may stop the run
there with status ``pruned``.

Determinism: with a ``steps`` or ``epochs`` budget, the same seed gives the same metrics on the
same machine and thread count. Weights come from ``build_model(spec, seed=...)``, the data order
from a local `torch.Generator`, and dropout/drop-path from the global RNG, which is seeded inside
`torch.random.fork_rng` so that the caller's RNG state is untouched. On CPU, torch's kernels are
deterministic for a fixed thread count, so ``torch.use_deterministic_algorithms`` is not needed;
on CUDA it (and ``CUBLAS_WORKSPACE_CONFIG``) would be. A ``seconds`` budget is deterministic only
up to where the clock stops it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar

import torch
from torch import nn

from evaluators import task_kinds
from evaluators.base import (
    MAX_BATCH,
    OK,
    PRUNED,
    EvalContext,
    EvalResult,
    Evaluator,
    register,
)
from evaluators.data import Dataset, dataset_source
from evaluators.task_kinds import CAUSAL_LM, CLASSIFICATION, TaskKind  # noqa: F401 (re-export)
from evaluators.task_kinds.builtin import IGNORE  # noqa: F401 (re-exported, as before)
from search_space import build_model
from search_space.errors import MixnasError
from search_space.option_types import Opt
from search_space.spec import ArchSpec, InputSpec

# A rung hook gets (rung index, that rung's metrics) and returns True to stop (prune) the run.
StopRule = Callable[[int, Mapping[str, float]], bool]

DEFAULT_STEPS = 100
TASK_KINDS = task_kinds.BUILTIN  # the built-in kinds; plug-ins may add more (task_kinds.names())
# settings that `EvalContext.options` may override per call, with the constructor's defaults
_SETTINGS: dict[str, Any] = {
    "lr": 2e-3,
    "weight_decay": 0.05,
    "label_smoothing": 0.1,
    "batch_size": 64,
    "warmup_steps": 0,
    "grad_clip": 1.0,
    "eval_batch_size": 256,
    "drop_path_rate": 0.0,
    "data_seed": 0,
    "data_options": None,
    "rungs": (),
    "stop_at_rung": None,
    "loss_window": 20,
    "task": CLASSIFICATION,
}

# the settings' types and ranges, checked when a run config is read
SETTING_TYPES: dict[str, Opt] = {
    "lr": Opt("float", min=0.0, max=100.0),
    "weight_decay": Opt("float", min=0.0, max=100.0),
    "label_smoothing": Opt("float", min=0.0, max=1.0),
    "batch_size": Opt("int", min=1, max=MAX_BATCH),
    "warmup_steps": Opt("int", min=0, max=100_000_000),
    "grad_clip": Opt("float", min=0.0, max=1e9),
    "eval_batch_size": Opt("int", min=1, max=MAX_BATCH),
    "drop_path_rate": Opt("float", min=0.0, max=1.0),
    "data_seed": Opt("int", min=0, max=2**63 - 1),
    "data_options": Opt("mapping", nullable=True),
    "rungs": Opt("number_list", min=1, max=1e12),
    "stop_at_rung": Opt("any", nullable=True),  # a number, a list of numbers (or a callable)
    "loss_window": Opt("int", min=1, max=1_000_000),
    # the built-in kinds and those of plug-ins: `_check_task` names them when one is unknown
    "task": Opt("str"),
}


class TrainingError(MixnasError, ValueError):
    """A training option or budget is invalid; the message is one line."""


@lru_cache(maxsize=8)
def _cached_dataset(
    task: str,
    name: str | None,
    input_spec: InputSpec,
    seed: int,
    options: tuple[tuple[str, Any], ...],
) -> Dataset:
    # candidates of one run share their input spec and data: load and adapt the set only once
    return task_kinds.get(task).dataset(name, input_spec, seed=seed, options=dict(options))


@register
class ShortTraining(Evaluator):
    """Short training of a spec's model on an offline dataset (see the module docstring).

    Keyword arguments (each also accepted in ``EvalContext.options``, which wins):
        lr, weight_decay: AdamW settings.
        label_smoothing: of the training loss (0.1).
        batch_size: training batch size (64; the training set size when it is smaller).
        warmup_steps: linear warm-up before the cosine decay (0).
        grad_clip: max gradient norm, or 0 for none (1.0).
        eval_batch_size: validation batch size (256).
        drop_path_rate: passed to `build_model` (0).
        data_seed: seeds the dataset's generation and split (0): independent of the evaluation
            seed, so that every candidate of a search sees the same split.
        data_options: options for `load_dataset` (``size``, ``difficulty``, ``val_fraction``;
            a generated task's ``n_train``, knobs...); they win over a ``data`` mapping's.
        rungs: step counts at which to record validation metrics.
        stop_at_rung: a callable ``(rung_index, metrics) -> bool``, a number (the least value of
            the task's primary metric at every rung) or a sequence of numbers (per rung); a run
            that fails it ends with status ``pruned``. The primary metric: ``top1`` for
            classification and causal_lm, ``miou`` for segmentation, ``psnr`` (dB) for
            super_resolution; all of them higher is better.
        loss_window: how many final steps ``train_loss`` averages (20).
        task: ``classification`` (one label per input), ``causal_lm`` (next token at every
            position; needs a causal LM head), ``segmentation`` (a class per pixel; needs a
            segmentation head) or ``super_resolution`` (an upscaled image; needs an SR head),
            or a plug-in's kind (`evaluators.task_kinds`).
    """

    name = "train"
    metrics: tuple[str, ...] = (
        "top1",
        "loss",
        "perplexity",
        "train_loss",
        "train_seconds",
        "steps",
    )
    # the options a subclass accepts (e.g. the ``ptq`` evaluator adds calibration options)
    defaults: ClassVar[dict[str, Any]] = _SETTINGS
    option_types: ClassVar[Mapping[str, Opt] | None] = SETTING_TYPES
    # whichever ends first; a step count given as 60.0 is 60 steps
    budget_types: ClassVar[Mapping[str, Opt] | None] = {
        "steps": Opt("float", min=1, max=1e12),
        "epochs": Opt("float", min=1e-6, max=1e9),
        "seconds": Opt("float", min=0.001, max=366 * 24 * 3600.0),
    }

    def __init__(self, **settings: Any) -> None:
        _check_settings(settings, "ShortTraining", self.defaults)
        self.settings: dict[str, Any] = {**self.defaults, **settings}
        task = self.settings.get("task", CLASSIFICATION)
        if task != CLASSIFICATION and isinstance(task, str) and task in task_kinds.KINDS:
            # what this instance reports: its task's metrics (classification's: the class's)
            kind = task_kinds.get(task)
            self.metrics = (*kind.metrics_names, "train_loss", "train_seconds", "steps")

    def check_heads(self, heads: Sequence[str]) -> None:
        """A one-line `TrainingError` for an unknown ``task`` or a head whose output the task
        cannot learn from (a search config's check, before the first trial)."""
        for head in heads:
            problem = task_kinds.mismatch(self.settings.get("task", CLASSIFICATION), head)
            if problem:
                raise TrainingError(problem)

    def build(self, spec: ArchSpec, seed: int, drop_path_rate: float) -> nn.Module:
        """The model to train: ``build_model`` (with the spec's quantization policy)."""
        return build_model(spec, seed=seed, drop_path_rate=drop_path_rate)

    def after_training(
        self,
        spec: ArchSpec,
        model: nn.Module,
        data: Dataset,
        cfg: Mapping[str, Any],
        final: dict[str, float],
    ) -> dict[str, float]:
        """Final metrics of a finished run (``final``: the validation metrics); subclasses
        may change the trained model (e.g. quantize it) and report more."""
        return final

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        _check_settings(context.options, "EvalContext.options", self.defaults)
        cfg = {**self.settings, **context.options}
        task = _check_task(cfg.get("task", CLASSIFICATION), spec)
        kind = task_kinds.get(task)
        cfg["task"] = task
        timings: dict[str, float] = {}
        start = time.perf_counter()
        data = self._dataset(context.data, spec, cfg)
        timings["data"] = time.perf_counter() - start

        device = torch.device(context.device)
        x_train, y_train = data.x_train.to(device), data.y_train.to(device)
        x_val, y_val = data.x_val.to(device), data.y_val.to(device)
        n_train = len(y_train)
        batch = max(1, min(int(cfg["batch_size"]), n_train))
        per_epoch = n_train // batch  # full batches only: batch norm needs more than one sample
        max_steps, max_seconds = _budget(context.budget, per_epoch)
        rungs = sorted({int(r) for r in cfg["rungs"] if 0 < int(r) <= max_steps})
        stop = _stop_rule(cfg["stop_at_rung"], kind)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(context.seed)  # dropout / drop-path draws, without leaking
            start = time.perf_counter()
            model = self.build(spec, context.seed, float(cfg["drop_path_rate"])).to(device)
            timings["build"] = time.perf_counter() - start
            optimizer = torch.optim.AdamW(
                model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
            )
            order_gen = torch.Generator().manual_seed(context.seed)
            warmup = int(cfg["warmup_steps"])
            recent: list[float] = []
            records: list[dict[str, float]] = []
            step, status = 0, OK
            order = torch.empty(0, dtype=torch.long)
            train_start = time.perf_counter()
            eval_seconds = 0.0
            while step < max_steps:
                elapsed = time.perf_counter() - train_start - eval_seconds
                if max_seconds is not None and elapsed >= max_seconds:
                    break
                position = step % per_epoch
                if position == 0:  # a fresh seeded shuffle every epoch
                    order = torch.randperm(n_train, generator=order_gen).to(device)
                index = order[position * batch : (position + 1) * batch]
                # the schedule follows the step budget, or the clock for a seconds-only budget
                progress = step / max_steps if math.isfinite(max_steps) else 0.0
                if max_seconds is not None:
                    progress = max(progress, elapsed / max_seconds)
                for group in optimizer.param_groups:
                    group["lr"] = float(cfg["lr"]) * _lr_factor(step, progress, warmup)
                model.train()
                output = model(x_train[index])
                loss = kind.loss(
                    output, y_train[index], label_smoothing=float(cfg["label_smoothing"])
                )
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss.item()} at step {step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg["grad_clip"]:
                    nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
                optimizer.step()
                step += 1
                recent = [*recent, loss.item()][-int(cfg["loss_window"]) :]
                if len(records) < len(rungs) and step == rungs[len(records)]:
                    tick = time.perf_counter()
                    record = {
                        "steps": float(step),
                        **_validate(model, x_val, y_val, cfg, spec.input.num_classes),
                    }
                    eval_seconds += time.perf_counter() - tick
                    records.append(record)
                    if stop is not None and stop(len(records) - 1, record):
                        status = PRUNED
                        break
            train_seconds = time.perf_counter() - train_start - eval_seconds
            start = time.perf_counter()
            if status == PRUNED:
                final = {k: v for k, v in records[-1].items() if k != "steps"}
            else:
                final = _validate(model, x_val, y_val, cfg, spec.input.num_classes)
                final = self.after_training(spec, model, data, cfg, final)
            timings["eval"] = eval_seconds + time.perf_counter() - start
        timings["train"] = train_seconds
        metrics = {
            **final,
            "train_loss": sum(recent) / len(recent) if recent else math.nan,
            "train_seconds": train_seconds,
            "steps": float(step),
        }
        return EvalResult(status, metrics, timings, rungs=tuple(records))

    @staticmethod
    def _dataset(data: Any, spec: ArchSpec, cfg: Mapping[str, Any]) -> Dataset:
        if isinstance(data, Dataset):
            return data
        task = str(cfg.get("task", CLASSIFICATION))
        options = dict(cfg["data_options"] or {})
        if isinstance(data, Mapping):  # a config's data: {name: pathfinder, n_train: ...}
            data, given = dataset_source(data)
            options = {**given, **options}
        if data is not None and not isinstance(data, str):
            data = str(data)  # a pathlib.Path
        options = task_kinds.get(task).data_options(spec, options)
        frozen = tuple(sorted((k, _frozen(v)) for k, v in options.items()))
        return _cached_dataset(task, data, spec.input, int(cfg["data_seed"]), frozen)


def _check_task(task: Any, spec: ArchSpec) -> str:
    """The task, after checking that the spec's head produces what it learns from (one line)."""
    problem = task_kinds.mismatch(task, spec.head.name)
    if problem:
        raise TrainingError(problem)
    return str(task)


def task_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    task: str,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """The training loss of ``task`` (`evaluators.task_kinds`: cross-entropy per input or per
    position with a target, per labelled pixel, or L1 for super-resolution)."""
    return task_kinds.get(task).loss(
        output, target, label_smoothing=label_smoothing, reduction=reduction
    )


def _frozen(value: Any) -> Any:
    """``value`` hashable (lists from a YAML config as tuples), for the dataset cache's key."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _check_settings(
    settings: Mapping[str, Any], where: str, allowed: Mapping[str, Any] = _SETTINGS
) -> None:
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise TrainingError(
            f"{where}: unknown training option {unknown[0]!r}; allowed: {', '.join(allowed)}"
        )


def _budget(budget: Mapping[str, float], per_epoch: int) -> tuple[float, float | None]:
    """The step limit (inf for seconds only) and the seconds limit (None when not given)."""
    unknown = sorted(set(budget) - {"steps", "seconds", "epochs"})
    if unknown:
        raise TrainingError(f"budget.{unknown[0]}: unknown; allowed: steps, seconds, epochs")
    for key, value in budget.items():
        if not float(value) > 0:
            raise TrainingError(f"budget.{key}: must be a number > 0 (got {value!r})")
    limits = []
    if "steps" in budget:
        limits.append(float(int(budget["steps"])))
    if "epochs" in budget:
        limits.append(float(max(1, round(float(budget["epochs"]) * per_epoch))))
    seconds = float(budget["seconds"]) if "seconds" in budget else None
    if not limits:
        limits.append(math.inf if seconds is not None else float(DEFAULT_STEPS))
    return min(limits), seconds


def _lr_factor(step: int, progress: float, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _stop_rule(rule: Any, kind: TaskKind | None = None) -> StopRule | None:
    """``rule`` as a function; thresholds apply to the task's primary metric (``top1`` for
    classification), as a least value, or a greatest for a metric where lower is better."""
    if rule is None or callable(rule):
        return rule  # type: ignore[no-any-return]
    key = kind.primary if kind is not None else "top1"
    sign = 1.0 if kind is None or kind.higher_is_better else -1.0

    def fails(value: float, threshold: float) -> bool:
        return sign * value < sign * threshold

    if isinstance(rule, int | float) and not isinstance(rule, bool):
        return lambda _index, metrics: fails(metrics[key], float(rule))
    if isinstance(rule, Sequence) and not isinstance(rule, str):
        thresholds = [float(t) for t in rule]
        return lambda index, metrics: (
            index < len(thresholds) and fails(metrics[key], thresholds[index])
        )
    raise TrainingError(
        f"stop_at_rung: must be a callable, a number or a list of numbers (got {rule!r})"
    )


@torch.no_grad()
def _validate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: Mapping[str, Any],
    num_classes: int | None = None,
) -> dict[str, float]:
    """The task's validation metrics over all of ``x, y`` (`evaluators.task_kinds`): for
    classification, ``top1`` (percent), plain cross-entropy ``loss`` and ``perplexity`` (exp
    of the loss), per input or, for ``causal_lm``, per position with a next token."""
    model.eval()
    kind = task_kinds.get(str(cfg.get("task") or CLASSIFICATION))
    size = max(1, int(cfg["eval_batch_size"]))
    metrics = kind.metrics(num_classes)
    for begin in range(0, len(y), size):
        metrics.update(model(x[begin : begin + size]), y[begin : begin + size])
    return {**metrics.result(), **kind.baseline(x, y)}
