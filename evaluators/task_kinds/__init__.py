"""Task kinds: what a model learns (a label per input, the next token, a label per pixel, a
larger image), how it is scored and where its data comes from. A registry, like the ops.

Who calls what, when: the ``train`` evaluator (`evaluators.training`) and ``mixnas train``
(`evaluators.fulltrain`) resolve the ``task`` option with `resolve` (which checks that the
spec's head produces what the task learns from: `OpDef.output`), load the data with
`TaskKind.dataset`, train on `TaskKind.loss`, and score the validation (and test) split with a
fresh `TaskKind.metrics` accumulator: ``update(output, target)`` per batch, `Metrics.result` at
the end. An accumulator keeps only sums (`Metrics.sums`, float64), so the result is exact over
the whole split whatever the batch size, and the ranks of a distributed run add their sums
before the result is taken.

Built-in kinds (head output in brackets; primary metric and direction):

* ``classification`` (``class``): cross-entropy; ``top1`` (higher), ``loss``, ``perplexity``.
* ``causal_lm`` (``token``): next-token cross-entropy; ``top1`` (higher), ``loss``,
  ``perplexity``.
* ``segmentation`` (``mask``): per-pixel cross-entropy, 255 = unlabelled; ``miou`` (higher),
  ``top1`` (pixel accuracy), ``dice``, ``loss``.
* ``super_resolution`` (``image``): L1; ``psnr`` (higher), ``ssim``, ``l1``, ``loss``,
  ``psnr_bilinear`` (the bilinear upsampling's PSNR: the baseline a model must beat).

Plug-ins add kinds with `register` from a module of the ``mixnas.datasets`` entry point group
(the group of the generated tasks: a new kind of task usually comes with its data); the
registry loads them on its first lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from evaluators.data import Dataset
from search_space.registry import Registry
from search_space.spec import ArchSpec, InputSpec

CLASSIFICATION, CAUSAL_LM = "classification", "causal_lm"
SEGMENTATION, SUPER_RESOLUTION = "segmentation", "super_resolution"
BUILTIN = (CLASSIFICATION, CAUSAL_LM, SEGMENTATION, SUPER_RESOLUTION)


class Metrics:
    """A validation metric accumulator of one task kind.

    ``update(output, target)`` adds one batch (model outputs, targets); ``result()`` gives the
    metrics of everything added. Subclasses keep every quantity they need as a sum in ``sums``
    (a float64 CPU vector), so that accumulators of disjoint parts of a split (batches, ranks)
    combine by adding their ``sums``.
    """

    def __init__(self, size: int) -> None:
        self.sums = torch.zeros(size, dtype=torch.float64)

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, float]:
        raise NotImplementedError


class TaskKind:
    """One kind of task (see the module docstring); subclasses set the class attributes.

    Attributes:
        name: the ``task`` option's value.
        output: what the spec's head must produce (`OpDef.output`: class, token, mask, image).
        metrics_names: the metrics `Metrics.result` reports (plus `baseline`'s).
        columns: the metrics ``mixnas train`` logs per epoch (``val_<name>``).
        primary: the metric that picks the best checkpoint and that ``stop_at_rung`` reads.
        higher_is_better: the primary metric's direction.
        smoothing: whether label smoothing (and mixup/CutMix) apply to it.
        head_hint: what a spec for it needs, for the one-line head mismatch error.
    """

    name: ClassVar[str]
    output: ClassVar[str]
    metrics_names: ClassVar[tuple[str, ...]]
    columns: ClassVar[tuple[str, ...]]
    primary: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    smoothing: ClassVar[bool] = False
    head_hint: ClassVar[str] = ""

    def loss(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        *,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """The training loss of a batch (``reduction``: ``mean``, ``sum`` or ``none``)."""
        raise NotImplementedError

    def metrics(self, num_classes: int | None = None) -> Metrics:
        """A fresh accumulator for one evaluation of a split (``num_classes``: the spec's;
        None: taken from the first batch's outputs where it matters)."""
        raise NotImplementedError

    def baseline(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Metrics of a split that do not depend on the model (a baseline), or {}; callers
        compute them once per split."""
        return {}

    def dataset(
        self, source: str | None, input_spec: InputSpec, *, seed: int, options: Mapping[str, Any]
    ) -> Dataset:
        """The data ``source`` names (None: the kind's default), shaped for ``input_spec``;
        a bad source or option is a one-line `evaluators.data.DatasetError`."""
        raise NotImplementedError

    def data_options(self, spec: ArchSpec, options: Mapping[str, Any]) -> dict[str, Any]:
        """The data options for ``spec``: ``options`` with what the spec decides (the
        super-resolution scale of its head); a conflict is a one-line `DatasetError`."""
        return dict(options)

    def better(self, value: float, best: float | None, min_delta: float = 0.0) -> bool:
        """Whether ``value`` beats ``best`` (None: anything does) by more than ``min_delta``."""
        if best is None:
            return True
        return value > best + min_delta if self.higher_is_better else value < best - min_delta


def _builtins() -> None:
    from evaluators.task_kinds import builtin, dense_seg, dense_sr  # noqa: F401 (they register)
    from evaluators.tasks import load_plugins

    # the group's plug-ins, loaded the way the tasks load them (so that the tasks a plug-in
    # adds are recorded as its own too); the registry's own load of the group then finds it done
    load_plugins()


KINDS: Registry[TaskKind] = Registry("task kind", group="mixnas.datasets", builtins=_builtins)


def register(kind: TaskKind) -> TaskKind:
    """Adds ``kind`` under its name; a second kind of that name raises."""
    KINDS.register(kind.name, kind)
    return kind


def names() -> list[str]:
    """The registered kinds: the built-ins and those of installed plug-ins."""
    return [n for n in BUILTIN if n in KINDS] + [n for n in KINDS.names() if n not in BUILTIN]


def get(name: str) -> TaskKind:
    """The kind called ``name``; an unknown name raises a `RegistryError` listing the known."""
    return KINDS.get(name)


def head_output(spec: ArchSpec) -> str | None:
    """What the spec's head produces (`OpDef.output`), None for an unknown head."""
    from search_space.ops import HEADS

    if spec.head.name not in HEADS:
        return None
    return str(HEADS.get(spec.head.name).output)


def infer(spec: ArchSpec) -> str:
    """The kind that learns from what ``spec``'s head produces (``class`` -> classification,
    ``token`` -> causal_lm, ``mask`` -> segmentation, ``image`` -> super_resolution)."""
    return for_output(head_output(spec))


def for_output(output: str | None) -> str:
    """The kind that learns from a head producing ``output`` (`OpDef.output`); classification
    for an unknown one."""
    for name in names():
        if get(name).output == output:
            return name
    return CLASSIFICATION


def mismatch(task: Any, head: str) -> str:
    """Why ``task`` cannot train a spec whose head is op ``head`` (an unknown task, or a head
    that produces something else), in one line; "" when it can."""
    from search_space.ops import HEADS

    if not isinstance(task, str) or task not in KINDS:
        return f"task: unknown task {task!r}; allowed: {', '.join(names())}"
    kind = get(task)
    if head not in HEADS:
        return ""  # an unknown head fails in the builder, with its own message
    output = str(HEADS.get(head).output)
    if output == kind.output:
        return ""
    fits = [n for n in names() if get(n).output == output]
    instead = f"task {fits[0]} for it, or " if fits else ""
    return (
        f"task {task}: the spec's head {head!r} {_PRODUCES.get(output, output)}; "
        f"allowed: {instead}{kind.head_hint}"
    )


# what a head of each output gives, for `mismatch`'s message
_PRODUCES = {
    "class": "gives one prediction per input",
    "token": "predicts the next token at every position",
    "mask": "predicts a class per pixel",
    "image": "produces an upscaled image",
}


__all__ = [
    "BUILTIN",
    "CAUSAL_LM",
    "CLASSIFICATION",
    "KINDS",
    "SEGMENTATION",
    "SUPER_RESOLUTION",
    "Metrics",
    "TaskKind",
    "for_output",
    "get",
    "head_output",
    "infer",
    "mismatch",
    "names",
    "register",
]
