"""Op-level lookup table: a network's latency as the sum of its ops' measured latencies, corrected.

The nn-Meter / FBNet / ProxylessNAS idea (Zhang et al., MobiSys 2021; Wu et al., CVPR 2019; Cai et
al., ICLR 2019): decompose a spec into ops (`search_space.plan`), key each by its signature (kind,
name, parameters, shapes, bits: `PlannedOp.signature`), time each distinct signature once on the
device, and predict a network as the sum over its ops. What the sum misses (the residual adds and
layout changes between ops, framework overhead per call, fusion on other runtimes) is a learned
correction ``latency = a * sum + b * ops + c``, fitted on whole-network measurements by non-negative
least squares on relative errors. Before any fit the prediction is the plain sum.

Each op is timed as the block runs it: token and channel mixers inside their layout conversion,
norms and layer scales on the ``(B, P + N, C)`` token tensor, the stem on the raw input, in the
precision its quantization policy gets (`predictors.quantize`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from predictors.base import Predictor, register
from predictors.calibration import IDENTITY, design, fit_correction
from predictors.table import LatencyTable, default_cache_dir, host_settings
from predictors.timing import TimingOptions, time_module
from search_space.errors import SpaceError
from search_space.plan import PlannedOp, plan
from search_space.spec import ArchSpec

log = logging.getLogger(__name__)


def _unit(item: PlannedOp, spec: ArchSpec, batch_size: int) -> tuple[Any, Any]:
    """The module that runs ``item`` the way the built network runs it, and an input for it."""
    import math

    import torch

    from search_space.nn.block import LayerScale
    from search_space.nn.builder import example_input, instantiate
    from search_space.nn.layout import from_layout, to_layout
    from search_space.nn.norms import make_norm

    ctx = item.ctx
    tokens = torch.randn(batch_size, ctx.prefix + math.prod(ctx.grid), ctx.dim)
    role = item.role.rstrip("12")
    if role == "stem":
        return instantiate(item), example_input(spec, batch_size)
    if role == "head" and ctx.sources:  # a dense head also reads the input and every stage
        image = example_input(spec, batch_size)
        sources = [image] + [torch.randn(batch_size, math.prod(g), c) for c, g in ctx.sources[1:]]
        return _with_inputs(instantiate(item), sources), tokens
    if role == "merge":  # a U-Net skip: the source stage's tokens join
        skip = torch.randn(batch_size, tokens.shape[1], int(item.params["source_dim"]))
        return _with_inputs(instantiate(item), skip), tokens
    if role in ("downsample", "head"):
        return instantiate(item), tokens
    if role == "norm":
        assert item.op is not None
        return make_norm(item.op.name, ctx.dim), tokens
    if role == "layer_scale":
        return LayerScale(ctx.dim, float(item.params["init"])), tokens
    assert item.op is not None
    mixer, layout, grid, prefix = instantiate(item), item.op.layout, ctx.grid, ctx.prefix

    class InLayout(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mixer = mixer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return from_layout(self.mixer(to_layout(x, layout, grid, prefix)), layout, prefix)

    return InLayout(), tokens


def _with_inputs_class() -> type:
    import torch

    class WithInputs(torch.nn.Module):
        """An op whose forward takes a second input (a skip, a dense head's sources), timed as
        ``op(x, extra)`` with ``extra`` fixed."""

        def __init__(self, op: torch.nn.Module, extra: Any) -> None:
            super().__init__()
            self.op, self.extra = op, extra

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.op(x, self.extra)  # type: ignore[no-any-return]

        def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to(): the inputs move too
            super()._apply(fn, recurse)
            if isinstance(self.extra, torch.Tensor):
                self.extra = fn(self.extra)
            else:
                self.extra = [fn(t) for t in self.extra]
            return self

    return WithInputs


def _with_inputs(op: Any, extra: Any) -> Any:
    return _with_inputs_class()(op, extra)


def profile_op(
    item: PlannedOp, spec: ArchSpec, options: TimingOptions, torch_device: str = "cpu"
) -> Any:
    """Times one planned op on this machine (see `_unit`); returns a `Timing`."""
    from predictors.quantize import float_dtype, quantize_inplace, wants_int8

    module, x = _unit(item, spec, options.batch_size)
    module.eval()
    dtype = options.dtype
    if torch_device == "cpu" and wants_int8(item.quant, dtype):
        quantize_inplace(module)
    elif dtype in ("fp16", "bf16"):
        module = module.to(float_dtype(dtype))
        x = x.to(float_dtype(dtype)) if x.is_floating_point() else x
    module, x = module.to(torch_device), x.to(torch_device)
    return time_module(module, x, options, device=torch_device)


def decompose(spec: ArchSpec) -> list[str]:
    """The op signatures of ``spec``, one per op, in execution order."""
    return [item.signature() for item in plan(spec)]


def fill_table(
    table: LatencyTable,
    specs: Sequence[ArchSpec],
    options: TimingOptions,
    torch_device: str = "cpu",
    *,
    save_every: int = 50,
) -> int:
    """Profiles every signature of ``specs`` the table lacks; returns how many it measured."""
    measured = 0
    for spec in specs:
        for item in plan(spec):
            sig = item.signature()
            if sig in table:
                continue
            table.add(sig, profile_op(item, spec, options, torch_device))
            measured += 1
            if measured % save_every == 0:
                table.save()  # a killed profiling run keeps what it measured
    if measured:
        table.save()
        log.info("profiled %d op signatures into %s", measured, table.path)
    return measured


@register
class LookupTablePredictor(Predictor):
    """Sum of profiled op latencies plus a learned correction; see the module docstring.

    Args:
        seed: unused (profiling and the correction are deterministic given the measurements).
        device: the table's device label; ops are profiled on this machine when ``profile``.
        cache_dir: where tables live (default `predictors.table.default_cache_dir`).
        profile: measure missing signatures here; when False a missing one raises `SpaceError`.
        threads, warmup, repeats, min_sample_ms, batch_size, dtype, statistic: timing options of
            the ops (see `predictors.timing.TimingOptions`); keep them equal to those of the
            network measurements (a table holds medians and minima, so either statistic reuses
            it).
        torch_device: ``cpu`` or ``cuda``.
    """

    name = "lut"
    log_target: ClassVar[bool] = False

    def __init__(
        self,
        *,
        seed: int = 0,
        device: str = "host",
        cache_dir: str | Path | None = None,
        profile: bool = True,
        threads: int = 1,
        warmup: int = 3,
        repeats: int = 10,
        min_sample_ms: float = 0.2,
        batch_size: int = 1,
        dtype: str = "auto",
        statistic: str = "median",
        torch_device: str = "cpu",
    ) -> None:
        super().__init__(seed=seed, device=device)
        self.options = TimingOptions(
            threads=threads,
            warmup=warmup,
            repeats=repeats,
            min_sample_ms=min_sample_ms,
            batch_size=batch_size,
            dtype=dtype,
            statistic=statistic,
        )
        self._key = f"{statistic}_ms"
        self.profile = profile
        self.torch_device = torch_device
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        settings = host_settings(self.options, torch_device)
        self.table = LatencyTable.open(directory, device, settings)
        self.measured = 0  # signatures this instance profiled
        self.coef = IDENTITY  # the plain sum until fitted
        self.rel_sigma = 0.0
        # the correction is fitted from whole-network measurements, so predict works unfitted
        self.fitted = True

    def ensure(self, specs: Sequence[ArchSpec]) -> int:
        """Makes the table cover ``specs``; returns how many signatures were profiled."""
        if not self.profile:
            missing = {s for spec in specs for s in decompose(spec) if s not in self.table}
            if missing:
                raise SpaceError(
                    f"predictor.lut.{self.device}",
                    f"the table lacks {len(missing)} op signature(s) and profiling is off; "
                    "run 'mixnas latency profile' on the device first",
                    value=sorted(missing)[0],
                )
            return 0
        count = fill_table(self.table, specs, self.options, self.torch_device)
        self.measured += count
        return count

    def op_sums(self, specs: Sequence[ArchSpec]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per spec: summed op medians, op count, and the summed ops' spread (IQR / 1.349)."""
        self.ensure(specs)
        sums, counts, spread = [], [], []
        for spec in specs:
            entries = [self.table.get(s) for s in decompose(spec)]
            sums.append(sum(e[self._key] for e in entries))
            counts.append(len(entries))
            spread.append(np.sqrt(sum((e["iqr_ms"] / 1.349) ** 2 for e in entries)))
        return np.array(sums), np.array(counts, dtype=float), np.array(spread)

    def _fit(self, specs: list[ArchSpec], y: np.ndarray) -> None:
        sums, counts, _ = self.op_sums(specs)
        self.coef, self.rel_sigma = fit_correction(sums, counts, y)

    def _predict(self, specs: list[ArchSpec]) -> tuple[np.ndarray, np.ndarray]:
        sums, counts, spread = self.op_sums(specs)
        mean = design(sums, counts) @ self.coef
        std = np.sqrt((self.coef[0] * spread) ** 2 + (self.rel_sigma * mean) ** 2)
        return mean, std
