"""The ``predicted_latency`` evaluator: ``latency_ms@<device>`` from a latency predictor.

For a device the search cannot run on (a phone, an FPGA, a GPU of the roofline library) or when
measuring every candidate costs too much: the value comes from `predictors.resolve.LatencyResolver`
(an op-level lookup table for ``host``/``cuda``, profiled once and cached on disk; the roofline
model for the devices of `predictors.roofline.DEVICES`). An unknown device fails when the
evaluator is built, so a search config naming one fails before any work.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

from evaluators.base import MAX_BATCH, MAX_THREADS, OK, EvalContext, EvalResult, Evaluator, register
from search_space.errors import SpaceError
from search_space.option_types import Opt
from search_space.spec import ArchSpec


def known_devices() -> list[str]:
    from predictors.resolve import TORCH_DEVICES
    from predictors.roofline import DEVICES

    return sorted({*TORCH_DEVICES, *DEVICES})


@register
class PredictedLatency(Evaluator):
    """``latency_ms@<device>`` predicted for ``device`` (see the module docstring).

    Args:
        device: ``host``, ``cuda`` or a device of the roofline library (``raspi4``, ``pixel3``,
            ``jetson_nano``, ...).
        threads, batch_size: timing settings of host lookup tables (as the ``latency``
            evaluator's, so that predictions stand for its measurements).
    """

    name = "predicted_latency"
    budget_types: ClassVar[Mapping[str, Opt] | None] = {}  # runs to completion
    option_types: ClassVar[Mapping[str, Opt] | None] = {
        "device": Opt("str"),
        "threads": Opt("int", min=1, max=MAX_THREADS),
        "batch_size": Opt("int", min=1, max=MAX_BATCH),
    }
    cheap = True  # a lookup-table sum or a model's prediction: no model is run

    def __init__(self, device: str = "host", *, threads: int = 1, batch_size: int = 1) -> None:
        known = known_devices()
        if device not in known:
            raise SpaceError(
                "predicted_latency.device",
                f"unknown device; known: {', '.join(known)}",
                value=device,
            )
        from predictors.resolve import LatencyResolver

        self.device = device
        self.metrics = (f"latency_ms@{device}",)
        self._predict = LatencyResolver(
            calibration=0, threads=threads, batch_size=batch_size
        ).metric(f"latency_ms@{device}")

    def _evaluate(self, spec: ArchSpec, context: EvalContext) -> EvalResult:
        start = time.perf_counter()
        value = self._predict(spec)
        return EvalResult(OK, {self.metrics[0]: value}, {"predict": time.perf_counter() - start})
