"""The label-per-input and next-token kinds: ``classification`` and ``causal_lm``.

Both are scored by cross-entropy: ``top1`` (percent of inputs, or of positions with a next
token, whose argmax is the target), ``loss`` (the plain cross-entropy, no smoothing, summed and
divided by the count once at the end: exact over the split) and ``perplexity`` (exp of ``loss``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from evaluators.data import Dataset
from evaluators.task_kinds import CAUSAL_LM, CLASSIFICATION, Metrics, TaskKind, register
from search_space.spec import InputSpec

IGNORE = -100  # a position without a target (evaluators.tasks.language.IGNORE)


class CrossEntropyMetrics(Metrics):
    """Sums: loss, correct, counted targets (a target of `IGNORE` is not counted)."""

    def __init__(self, per_position: bool) -> None:
        super().__init__(3)
        self.per_position = per_position

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        logits = output.float()
        if self.per_position:
            logits, target = logits.flatten(0, 1), target.flatten()
        loss = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="sum")
        counted = target != IGNORE
        correct = ((logits.argmax(dim=-1) == target) & counted).sum()
        self.sums += torch.tensor([loss.item(), int(correct), int(counted.sum())]).double()

    def result(self) -> dict[str, float]:
        total_loss, correct, count = self.sums.tolist()
        n = max(1.0, count)
        loss = total_loss / n
        # exp overflows a float past ~709; such a model predicts nothing anyway
        return {
            "top1": 100.0 * correct / n,
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
        }


class Classification(TaskKind):
    """One label per input: cross-entropy on a pooled classifier's logits ``B x classes``."""

    name = CLASSIFICATION
    output = "class"
    metrics_names = ("top1", "loss", "perplexity")
    columns = ("top1", "loss")
    primary = "top1"
    smoothing = True
    head_hint = "a classifier head"

    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> torch.Tensor:
        return F.cross_entropy(
            output.float(), target, label_smoothing=label_smoothing, reduction=reduction
        )

    def metrics(self, num_classes: int | None = None) -> Metrics:
        return CrossEntropyMetrics(per_position=False)

    def dataset(
        self, source: str | None, input_spec: InputSpec, *, seed: int, options: Mapping[str, Any]
    ) -> Dataset:
        from evaluators.data import DatasetError, load_dataset
        from evaluators.tasks import TASKS
        from evaluators.tasks.dense import DenseTask

        task = TASKS.get(str(source)) if source is not None else None
        if isinstance(task, DenseTask):  # a mask or an image per example, not a label
            kind = "segmentation" if task.target == "mask" else "super_resolution"
            raise DatasetError(
                f"classification: data {source!r} has a {task.target} per example, not a class "
                f"label; allowed: task {kind} for it (with its head), or a classification source"
            )
        return load_dataset(source, input_spec, seed=seed, **dict(options))


class CausalLM(TaskKind):
    """The next token at every position: logits ``B x L x vocab``, targets ``B x L`` with
    `IGNORE` where a position has no next token (`evaluators.tasks.language`)."""

    name = CAUSAL_LM
    output = "token"
    metrics_names = ("top1", "loss", "perplexity")
    columns = ("top1", "loss", "perplexity")
    primary = "top1"
    smoothing = True
    head_hint = "a causal LM head ('lm_head', as in the causal_lm space)"

    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> torch.Tensor:
        return F.cross_entropy(
            output.float().flatten(0, 1),
            target.flatten(),
            ignore_index=IGNORE,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )

    def metrics(self, num_classes: int | None = None) -> Metrics:
        return CrossEntropyMetrics(per_position=True)

    def dataset(
        self, source: str | None, input_spec: InputSpec, *, seed: int, options: Mapping[str, Any]
    ) -> Dataset:
        from evaluators.tasks.language import lm_dataset

        return lm_dataset(source, input_spec, seed=seed, options=options)


CLASSIFICATION_KIND = register(Classification())
CAUSAL_LM_KIND = register(CausalLM())

__all__ = ["CAUSAL_LM_KIND", "CLASSIFICATION_KIND", "IGNORE", "CrossEntropyMetrics"]
