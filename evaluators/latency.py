"""The ``latency`` evaluator: measured inference latency of a spec's model on this machine.

Who calls what: a run driver calls ``evaluators.create("latency", **options).evaluate(spec, ctx)``
for each candidate; ``ctx.device`` picks the torch device (``cpu`` or ``cuda``). The model is built
from the spec with ``ctx.seed``, put in the precision the options ask for (int8 where the spec's
quantization policy has <= 8-bit weights, see `predictors.quantize`), and timed with
`predictors.timing.time_module` (fixed threads, warm-up, repeats, median and IQR, re-measured when
noisy).

Metrics (milliseconds per forward pass of one batch):
    ``latency_ms`` and ``latency_ms@<device>`` (the median, or the minimum with
    ``statistic="min"``; the second name is the one space constraints and search objectives use),
    ``latency_median_ms``, ``latency_iqr_ms``, ``latency_min_ms``,
    ``latency_rel_iqr``, ``latency_noisy`` (1.0 when the spread stayed above ``max_rel_iqr``
    after every re-measurement), ``latency_attempts``. Timings: ``measure`` seconds (build and
    timing).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

from evaluators.base import MAX_BATCH, MAX_THREADS, OK, EvalContext, EvalResult, Evaluator, register
from predictors.timing import DTYPES, STATISTICS, TimingOptions, measure_spec
from search_space.errors import SpaceError
from search_space.option_types import Opt
from search_space.spec import ArchSpec

HOST = "host"
CUDA = "cuda"


def device_name(torch_device: str) -> str:
    """The device label of metric names: ``host`` for the CPU, ``cuda`` for a GPU."""
    return CUDA if torch_device.startswith("cuda") else HOST


@register
class LatencyEvaluator(Evaluator):
    """Measures a spec's model; options are those of `predictors.timing.TimingOptions`.

    Args:
        threads: torch intra-op threads while timing (default 1).
        warmup: untimed calls first (default 5).
        repeats: timed samples (default 30).
        min_sample_ms: a sample repeats the forward until it lasts about this long (default 1.0).
        max_rel_iqr: IQR / median above which the measurement is repeated (default 0.1).
        max_remeasure: extra attempts when noisy (default 2).
        batch_size: input batch size (default 1).
        dtype: ``auto`` (int8 where the policy asks for <= 8 bits), ``fp32``, ``fp16``, ``bf16``
            or ``int8`` (default ``auto``).
        statistic: ``median`` (default) or ``min``: which one ``latency_ms`` reports; use ``min``
            on a machine shared with other jobs (see `predictors.timing.TimingOptions`).
        device_name: label used in ``latency_ms@<device_name>`` (default ``host`` on CPU and
            ``cuda`` on a GPU).
    """

    name = "latency"
    budget_types: ClassVar[Mapping[str, Opt] | None] = {}  # runs to completion
    option_types: ClassVar[Mapping[str, Opt] | None] = {
        "threads": Opt("int", min=1, max=MAX_THREADS),
        "warmup": Opt("int", min=0, max=100_000),
        "repeats": Opt("int", min=1, max=100_000),
        "min_sample_ms": Opt("float", min=0.0, max=60_000.0),
        "max_rel_iqr": Opt("float", min=0.0, max=100.0),
        "max_remeasure": Opt("int", min=0, max=100),
        "batch_size": Opt("int", min=1, max=MAX_BATCH),
        "dtype": Opt("str", choices=DTYPES),
        "statistic": Opt("str", choices=STATISTICS),
        "device_name": Opt("str", nullable=True),
    }
    metrics: tuple[str, ...] = (
        "latency_ms",
        "latency_median_ms",
        "latency_iqr_ms",
        "latency_min_ms",
        "latency_rel_iqr",
        "latency_noisy",
        "latency_attempts",
    )

    def __init__(
        self,
        *,
        threads: int = 1,
        warmup: int = 5,
        repeats: int = 30,
        min_sample_ms: float = 1.0,
        max_rel_iqr: float = 0.1,
        max_remeasure: int = 2,
        batch_size: int = 1,
        dtype: str = "auto",
        statistic: str = "median",
        device_name: str | None = None,
    ) -> None:
        self.options = TimingOptions(
            threads=threads,
            warmup=warmup,
            repeats=repeats,
            min_sample_ms=min_sample_ms,
            max_rel_iqr=max_rel_iqr,
            max_remeasure=max_remeasure,
            batch_size=batch_size,
            dtype=dtype,
            statistic=statistic,
        )
        if device_name is not None and (not device_name or "@" in device_name):
            raise SpaceError(
                "latency.device_name", "must be a non-empty name without '@'", value=device_name
            )
        self.device_name = device_name
        # what a run config may name: the given label, else the one of the entry's device
        # (`bind_device`; host until told)
        self.metrics = (*type(self).metrics, f"latency_ms@{device_name or HOST}")

    # ``latency_ms@host`` means this host's CPU: with ``device: auto`` the evaluator measures on
    # the CPU even where a GPU is present (GPU latency is asked for with ``device: cuda``)
    auto_device: ClassVar[str] = "cpu"

    def bind_device(self, device: str) -> None:
        """Names the metric after the device a run config's entry asks for (``auto`` and
        ``cpu``: host; ``cuda``/``cuda:N``: cuda), unless ``device_name`` was given."""
        if self.device_name is None:
            label = device_name(self.auto_device if device == "auto" else device)
            self.metrics = (*type(self).metrics, f"latency_ms@{label}")

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        import torch

        device = context.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise SpaceError("context.device", "CUDA is not available here", value=device)
        start = time.perf_counter()
        timing = measure_spec(spec, self.options, torch_device=device, seed=context.seed)
        name = self.device_name or device_name(device)
        metrics = {
            "latency_ms": timing.value(self.options.statistic),
            f"latency_ms@{name}": timing.value(self.options.statistic),
            "latency_median_ms": timing.median_ms,
            "latency_iqr_ms": timing.iqr_ms,
            "latency_min_ms": timing.min_ms,
            "latency_rel_iqr": timing.rel_iqr,
            "latency_noisy": float(timing.noisy),
            "latency_attempts": float(timing.attempts),
        }
        return EvalResult(OK, metrics, {"measure": time.perf_counter() - start})
