"""The ``supernet`` evaluator: a spec's accuracy with weights inherited from a trained supernet.

Options: ``checkpoint`` (the file `mixnas supernet train` writes; it holds the space and the data
settings it was trained with), ``recalibration_batches`` (batch-norm recalibration, 8),
``batch_size`` (64), ``eval_batch_size`` (256) and ``amp`` (``off | bf16 | fp16``: autocast of
the recalibration and scoring passes, `evaluators.devices`; default ``off``). ``EvalContext.data``
overrides the stored dataset. A spec the supernet does not hold is a failed result naming the
missing weight. Scoring runs on ``EvalContext.device``: the evaluator entry's ``device`` field of
a search config (``auto | cpu | cuda | cuda:N``), not an option, as for every evaluator.

Without a checkpoint the evaluator scores the untrained subnet (the builder's initialisation):
that keeps the evaluator usable in contract tests and dry runs, and is logged as a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from evaluators import task_kinds
from evaluators.base import MAX_BATCH, OK, EvalContext, EvalResult, Evaluator, register
from evaluators.data import Dataset
from evaluators.devices import AMP_MODES
from evaluators.supernet.network import Supernet
from evaluators.supernet.train import SupernetError, evaluate_subnet, load_supernet, score_model
from evaluators.task_kinds import infer
from search_space import build_model
from search_space.option_types import Opt
from search_space.spec import ArchSpec

log = logging.getLogger(__name__)
_OPTIONS = ("checkpoint", "recalibration_batches", "batch_size", "eval_batch_size", "amp")


@register
class SupernetEvaluator(Evaluator):
    """Scores specs with inherited weights (see the module docstring)."""

    name = "supernet"
    metrics: tuple[str, ...] = ("top1", "loss")  # a trained supernet's task decides (init)
    # checked when a run config is read (`search_space.option_types`), before any work
    option_types: ClassVar[Mapping[str, Opt] | None] = {
        "checkpoint": Opt("str", nullable=True),
        "recalibration_batches": Opt("int", min=0, max=1_000_000),
        "batch_size": Opt("int", min=1, max=MAX_BATCH),
        "eval_batch_size": Opt("int", min=1, max=MAX_BATCH),
        "amp": Opt("str", choices=AMP_MODES),
    }
    budget_types: ClassVar[Mapping[str, Opt] | None] = {}  # scores a subnet once
    defaults: ClassVar[dict[str, Any]] = {
        "checkpoint": None,
        "recalibration_batches": 8,
        "batch_size": 64,
        "eval_batch_size": 256,
        "amp": "off",
    }
    # not `cheap`: recalibrating and scoring a subnet takes 0.1-1 s on a CPU, far above a process
    # dispatch, so worker processes still pay off; `backend: {workers: 0, batch: N}` evaluates
    # one loaded supernet in the driver, N subnets a batch

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise SupernetError(
                f"supernet evaluator: unknown option {unknown[0]!r}; allowed: {', '.join(_OPTIONS)}"
            )
        for key in ("recalibration_batches", "batch_size", "eval_batch_size"):
            value = options.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SupernetError(
                    f"supernet evaluator: {key} must be an integer >= 0 (got {value!r})"
                )
        if options.get("amp", "off") not in AMP_MODES:
            raise SupernetError(
                f"supernet evaluator: amp must be one of {list(AMP_MODES)} (got {options['amp']!r})"
            )
        self.options = dict(options)
        self.checkpoint = Path(options["checkpoint"]) if options.get("checkpoint") else None
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise SupernetError(f"supernet evaluator: checkpoint {self.checkpoint} does not exist")
        self._loaded: tuple[Supernet, dict[str, Any]] | None = None
        self._data: dict[Any, Dataset] = {}
        # what the supernet learnt decides what this instance reports (miou, psnr, ...)
        self.task = task_kinds.get(_trained_task(self.checkpoint))
        self.metrics = tuple(self.task.metrics_names)

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        start = time.perf_counter()
        supernet: Supernet | None = None
        state: dict[str, Any] = {}
        if self.checkpoint is not None:
            if self._loaded is None:
                self._loaded = load_supernet(self.checkpoint)
            supernet, state = self._loaded
        else:
            log.warning("supernet evaluator without a checkpoint: scoring the untrained subnet")
        loaded = time.perf_counter()
        stored = state.get("data", {})
        name = context.data if context.data is not None else stored.get("name")
        key = (str(name), spec.input, context.device)
        if key not in self._data:
            task = self.task if self.checkpoint is not None else task_kinds.get(infer(spec))
            data = task.dataset(
                None if name is None else str(name),
                spec.input,
                seed=int(stored.get("seed", 0)),
                options=task.data_options(spec, stored.get("options") or {}),  # an SR scale
            )
            self._data[key] = _moved(data, context.device)
        settings: dict[str, Any] = {
            "recalibration_batches": int(self.options.get("recalibration_batches", 8)),
            "batch_size": int(self.options.get("batch_size", 64)),
            "eval_batch_size": int(self.options.get("eval_batch_size", 256)),
            "amp": str(self.options.get("amp", "off")),
        }
        if supernet is not None and context.device == "cpu":
            metrics = evaluate_subnet(supernet, spec, self._data[key], **settings)
        else:
            # an untrained supernet's subnet is the builder's initialisation; on a GPU the
            # subnet runs as a standalone copy (`Supernet.extract`: the same weights and
            # computation), since the supernet and its cached subnets stay on the CPU
            if supernet is not None:
                model = supernet.extract(spec)
            else:
                model = build_model(spec, seed=context.seed)
            model = model.to(context.device)
            task = self.task if supernet is not None else task_kinds.get(infer(spec))
            metrics = score_model(model, model, self._data[key], task=task, **settings)
        timings = {"load": loaded - start, "eval": time.perf_counter() - loaded}
        return EvalResult(OK, metrics, timings)


def _trained_task(checkpoint: Path | None) -> str:
    """The task the checkpoint's supernet learnt (classification for one written before tasks
    were recorded, and without a checkpoint)."""
    if checkpoint is None:
        return task_kinds.CLASSIFICATION
    import torch

    try:  # memory-mapped: only the small ``data`` entry is read, not the weights
        state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise SupernetError(f"{checkpoint}: not a readable supernet checkpoint ({err})") from None
    data = state.get("data") if isinstance(state, dict) else None
    task = data.get("task") if isinstance(data, dict) else None
    return str(task) if task in task_kinds.names() else task_kinds.CLASSIFICATION


def _moved(data: Dataset, device: str) -> Dataset:
    """``data`` with its tensors on ``device`` (the same tensors on the CPU)."""
    return replace(
        data,
        x_train=data.x_train.to(device),
        y_train=data.y_train.to(device),
        x_val=data.x_val.to(device),
        y_val=data.y_val.to(device),
    )
