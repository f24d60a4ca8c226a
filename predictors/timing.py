"""Wall-clock timing of torch callables: fixed threads, warm-up, repeats, median and IQR, noise.

Who calls what: the ``latency`` evaluator times whole models with `time_module`; the lookup-table
predictor times single ops with the same function, so a table entry and a network measurement use
one method. Timing lives here rather than in `evaluators` because imports flow
``predictors <- evaluators`` and the lookup table profiles ops itself.

Method (the usual one of on-device latency tables, e.g. nn-Meter, Zhang et al., MobiSys 2021, and
HW-NAS-Bench, Li et al., ICLR 2021): run a few warm-up calls (allocation, kernel selection), then
time ``repeats`` samples, each the mean of ``number`` back-to-back calls so that short ops are not
lost in the timer's resolution. Report the median (robust to the spikes other processes cause) and
the inter-quartile range. When the relative IQR exceeds ``max_rel_iqr`` the whole measurement is
repeated (up to ``max_remeasure`` times) and the quietest attempt kept; if none is quiet enough the
result is flagged ``noisy``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from search_space.errors import SpaceError

DTYPES = ("fp32", "fp16", "bf16", "int8", "auto")
STATISTICS = ("median", "min")


@dataclass(frozen=True)
class TimingOptions:
    """How to time: every knob of a measurement, validated once.

    Attributes:
        threads: torch intra-op threads while timing (restored afterwards); fixed so that
            measurements are comparable across runs and machines' loads.
        warmup: untimed calls before timing.
        repeats: timed samples (median and IQR are taken over these).
        min_sample_ms: each sample repeats the call until it lasts about this long.
        max_rel_iqr: IQR / median above which a measurement counts as noisy.
        max_remeasure: extra attempts when a measurement is noisy.
        batch_size: input batch size.
        dtype: ``fp32``, ``fp16``, ``bf16``, ``int8`` (every linear layer dynamically quantized)
            or ``auto`` (int8 where the spec's quantization policy asks for <= 8-bit weights).
        statistic: the headline value of a measurement: ``median`` (robust to occasional
            spikes) or ``min`` (the uncontended time: on a machine shared with other jobs the
            minimum repeats far better than the median, as ``timeit``'s documentation advises).
    """

    threads: int = 1
    warmup: int = 5
    repeats: int = 30
    min_sample_ms: float = 1.0
    max_rel_iqr: float = 0.1
    max_remeasure: int = 2
    batch_size: int = 1
    dtype: str = "auto"
    statistic: str = "median"

    def __post_init__(self) -> None:
        for name in ("threads", "repeats", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpaceError(f"latency.{name}", "must be an integer >= 1", value=value)
        for name in ("warmup", "max_remeasure"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SpaceError(f"latency.{name}", "must be an integer >= 0", value=value)
        for name in ("min_sample_ms", "max_rel_iqr"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise SpaceError(f"latency.{name}", "must be a number > 0", value=value)
        if self.dtype not in DTYPES:
            raise SpaceError("latency.dtype", f"must be one of {list(DTYPES)}", value=self.dtype)
        if self.statistic not in STATISTICS:
            raise SpaceError(
                "latency.statistic", f"must be one of {list(STATISTICS)}", value=self.statistic
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    """One measurement, in milliseconds per call.

    Attributes:
        median_ms, iqr_ms, q1_ms, q3_ms, min_ms: statistics of the samples.
        samples: number of timed samples; number: calls per sample.
        attempts: measurements made (more than one when the first was noisy).
        noisy: the kept attempt's relative IQR still exceeds ``max_rel_iqr``.
    """

    median_ms: float
    iqr_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    samples: int
    number: int
    attempts: int
    noisy: bool

    def value(self, statistic: str) -> float:
        """The headline milliseconds: the median or the minimum."""
        return self.min_ms if statistic == "min" else self.median_ms

    @property
    def rel_iqr(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rel_iqr": self.rel_iqr}


@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Runs the body with ``threads`` torch intra-op threads, restoring the previous setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync_for(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def time_call(fn: Callable[[], Any], options: TimingOptions, *, device: str = "cpu") -> Timing:
    """Times ``fn()`` (which must already hold its inputs) under ``options``; see module doc."""
    sync = _sync_for(device)
    with fixed_threads(options.threads):
        for _ in range(options.warmup):
            fn()
        sync()
        # calls per sample: enough that one sample lasts about min_sample_ms
        start = time.perf_counter()
        fn()
        sync()
        once_ms = max((time.perf_counter() - start) * 1e3, 1e-4)
        number = max(1, min(1000, math.ceil(options.min_sample_ms / once_ms)))
        best: Timing | None = None
        for attempt in range(1, options.max_remeasure + 2):
            samples = np.empty(options.repeats)
            for i in range(options.repeats):
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                sync()
                samples[i] = (time.perf_counter() - start) * 1e3 / number
            q1, median, q3 = np.percentile(samples, [25, 50, 75])
            timing = Timing(
                median_ms=float(median),
                iqr_ms=float(q3 - q1),
                q1_ms=float(q1),
                q3_ms=float(q3),
                min_ms=float(samples.min()),
                samples=options.repeats,
                number=number,
                attempts=attempt,
                noisy=False,
            )
            if best is None or timing.rel_iqr < best.rel_iqr:
                best = timing
            if timing.rel_iqr <= options.max_rel_iqr:
                break
    assert best is not None
    noisy = best.rel_iqr > options.max_rel_iqr
    return Timing(**{**asdict(best), "attempts": attempt, "noisy": noisy})


def time_module(module: Any, inputs: Any, options: TimingOptions, *, device: str = "cpu") -> Timing:
    """Times ``module(inputs)`` in eval mode without autograd."""
    import torch

    module.eval()

    def call() -> Any:
        with torch.inference_mode():
            return module(inputs)

    return time_call(call, options, device=device)


def measure_spec(
    spec: Any, options: TimingOptions, *, torch_device: str = "cpu", seed: int = 0
) -> Timing:
    """Builds ``spec``'s model in the precision ``options.dtype`` asks for and times it.

    The ``latency`` evaluator and the latency resolver's calibration both measure through here.
    """
    from predictors.quantize import float_dtype, prepare_model
    from search_space import build_model, example_input

    # the float model: fake quantization would time float emulation, not int8 kernels
    model = build_model(spec, seed=seed, quantize=False).eval()
    # int8 dynamic quantization has CPU kernels only
    dtype = options.dtype
    if torch_device != "cpu" and dtype in ("int8", "auto"):
        dtype = "fp32"
    model = prepare_model(model, spec, dtype).to(torch_device)
    x = example_input(spec, options.batch_size, seed=seed).to(torch_device)
    if x.is_floating_point():
        x = x.to(float_dtype(dtype))
    return time_module(model, x, options, device=torch_device)
