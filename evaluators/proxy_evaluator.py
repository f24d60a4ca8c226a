"""The ``proxy`` evaluator: training-free proxy scores as metrics ``proxy:<name>``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from evaluators.base import (
    FAILED,
    MAX_BATCH,
    OK,
    EvalContext,
    EvalResult,
    Evaluator,
    register,
)
from search_space.option_types import Opt
from search_space.spec import ArchSpec

# cheap, complementary and finite on every mixer: two data-free, two gradient, one activation
DEFAULT_PROXIES = ("synflow", "zen", "snip", "grad_norm", "nwot", "params", "macs")


@register
class ProxyEvaluator(Evaluator):
    """Scores a spec with training-free proxies (see `evaluators.proxies`).

    ``context.seed`` seeds the weights and the random batch; ``context.data`` may be an
    ``(inputs, targets)`` pair of tensors to score on instead of a random batch; the proxies run
    on ``context.device``. A proxy that
    cannot score the model fails the whole result with its reason, so a search never ranks a
    candidate on a partial set of scores.
    """

    name = "proxy"
    budget_types: ClassVar[Mapping[str, Opt] | None] = {}  # runs to completion
    option_types: ClassVar[Mapping[str, Opt] | None] = {
        "names": Opt("str_list"),
        "batch_size": Opt("int", min=1, max=MAX_BATCH),
    }
    metrics = tuple(f"proxy:{n}" for n in DEFAULT_PROXIES)

    def __init__(self, names: Sequence[str] = DEFAULT_PROXIES, batch_size: int = 64) -> None:
        from evaluators.proxies import PROXIES

        for n in names:  # unknown names fail at construction, not per candidate
            PROXIES.get(n)
        self.names = tuple(names)
        self.batch_size = batch_size
        self.metrics = tuple(f"proxy:{n}" for n in self.names)  # what this instance reports

    def check_heads(self, heads: Sequence[str]) -> None:
        """Refuses, in one line, a proxy that cannot score the task of one of ``heads``
        (``epe_nas`` groups samples by class label: classification only)."""
        from evaluators.proxies.registry import ALL_TASKS, PROXY_TASKS
        from evaluators.task_kinds import for_output
        from search_space.ops import HEADS

        for head in heads:
            if head not in HEADS:
                continue
            task = for_output(HEADS.get(head).output)
            unable = [n for n in self.names if task not in PROXY_TASKS.get(n, ALL_TASKS)]
            if unable:
                raise ValueError(
                    f"proxy: {', '.join(unable)} cannot score {task} (head {head!r}); "
                    f"remove {'it' if len(unable) == 1 else 'them'} from options.names"
                )

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        from evaluators.proxies import compute_detailed

        data = context.data if isinstance(context.data, tuple) else None
        scores = compute_detailed(
            spec,
            self.names,
            data=data,
            seed=context.seed,
            batch_size=self.batch_size,
            device=context.device,
        )
        metrics = {f"proxy:{n}": s.value for n, s in scores.items()}
        timings = {f"proxy:{n}": s.seconds for n, s in scores.items()}
        errors = [f"{n}: {s.error}" for n, s in scores.items() if s.error]
        if errors:
            return EvalResult(FAILED, metrics, timings, "; ".join(errors))
        return EvalResult(OK, metrics, timings)
