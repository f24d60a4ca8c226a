"""Contract every registered predictor passes, and the lookup-table contract of every mixer.

Predictors: ``create(name, seed=0)`` gives an object whose ``fit(specs, targets)`` accepts specs of
a declared space and of NAS-Bench-201, whose ``predict`` returns one finite value per spec in the
targets' unit (positive for latency), whose ``predict_std`` is finite and non-negative, that
follows the targets on held-out specs, repeats itself for a seed, and rejects bad input with the
project's errors. Mixers: each registered token and channel mixer decomposes into a lookup-table
signature that the table can profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

import predictors
import predictors.lut
import predictors.timing
from mixnas.testing.predictors import (
    CHECKS,
    check_follows_the_targets_on_held_out_specs,
    check_lookup_table_decomposition,
    lookup_table_cases,
)
from mixnas.testing.predictors import FAST_OPTIONS as _FAST
from mixnas.testing.predictors import create as _create
from mixnas.testing.predictors import hybrid_specs as _hybrid
from predictors.timing import Timing, TimingOptions, measure_spec
from search_space import ArchSpec
from search_space.ops import OpContext, OpDef

NAMES = predictors.names()
FAST_LUT = _FAST["lut"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    # one table per test session: lookup tables profile on this machine, never in ~/.cache
    monkeypatch.setenv("MIXNAS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _measured(specs: list[ArchSpec]) -> np.ndarray:
    options = TimingOptions(warmup=1, repeats=5, min_sample_ms=0.5)
    return np.array([measure_spec(s, options).min_ms for s in specs])


def test_registry_lists_the_issue_predictors() -> None:
    assert {"macs_linear", "ridge", "gbt", "mlp", "lut", "roofline", "transfer", "gp", "rf"} <= set(
        NAMES
    )
    with pytest.raises(KeyError, match="known"):
        predictors.create("no_such_predictor")


@pytest.mark.parametrize(
    "check",
    [c for c in CHECKS if c is not check_follows_the_targets_on_held_out_specs],
    ids=lambda c: c.__name__.removeprefix("check_"),
)
@pytest.mark.parametrize("name", NAMES)
def test_predictor_contract(name: str, check: Any) -> None:
    check(name)


def _simulated_time_module(module: Any, inputs: Any, options: TimingOptions, **_: Any) -> Timing:
    """A deterministic device: 10 GFLOP/s of matmul and convolution, 1 ns per element written,
    3 us per module call. The lookup table's machinery (decomposition into ops, each op run in its
    layout, the sum, the fitted correction) meets the same whole-network target it meets on
    hardware, without the wall clock's noise on a shared machine (CI's two test workers put the
    real-time version at Spearman 0.42 once; it runs under ``-m slow`` and in bench/latency.py)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    written, calls = [0], [0]

    def count(_module: Any, _inputs: Any, output: Any) -> None:
        calls[0] += 1
        if isinstance(output, torch.Tensor):
            written[0] += output.numel()

    leaves = [m for m in module.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as flops:
            module.eval()(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    ms = flops.get_total_flops() / 1e7 + written[0] / 1e6 + 0.003 * calls[0]
    return Timing(ms, 0.0, ms, ms, ms, samples=1, number=1, attempts=1, noisy=False)


@pytest.mark.parametrize("name", NAMES)
def test_follows_the_targets_on_held_out_specs(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    specs = _hybrid(60, seed=1)
    if name == "lut":
        # the lookup table models time, not MACs: give it the latency of the same specs on a
        # simulated device that the table profiles too
        monkeypatch.setattr(predictors.timing, "time_module", _simulated_time_module)
        monkeypatch.setattr(predictors.lut, "time_module", _simulated_time_module)
        # a table of its own: simulated entries must never reach a test that times for real
        monkeypatch.setenv("MIXNAS_CACHE", str(tmp_path / "simulated"))
    targets = _measured(specs) if name == "lut" else None
    check_follows_the_targets_on_held_out_specs(name, specs, targets)


@pytest.mark.slow  # wall-clock latency: noisy while other test workers share the cores
def test_lookup_table_follows_measured_latency_on_held_out_specs() -> None:
    specs = _hybrid(60, seed=1)
    y = _measured(specs)
    model = _create("lut").fit(specs[:40], y[:40])
    rho = spearmanr(model.predict(specs[40:]), y[40:])[0]
    assert rho > 0.6, f"lut: Spearman {rho:.2f} on held-out specs against measured latency"


@pytest.mark.parametrize(("op", "role", "ctx"), lookup_table_cases())
def test_every_mixer_has_a_lookup_table_decomposition(op: OpDef, role: str, ctx: OpContext) -> None:
    check_lookup_table_decomposition(op, role, ctx)


def test_lookup_table_is_reused_across_runs(tmp_path: Path) -> None:
    specs = _hybrid(3, seed=5)
    first = predictors.create("lut", cache_dir=tmp_path, **FAST_LUT)
    first.predict(specs)
    assert first.measured > 0 and len(list(tmp_path.glob("host-*.lut.json"))) == 1
    second = predictors.create("lut", cache_dir=tmp_path, **FAST_LUT)  # a new run
    np.testing.assert_allclose(second.predict(specs), first.predict(specs))
    assert second.measured == 0  # it measured nothing the table already had
    other = predictors.create("lut", cache_dir=tmp_path, batch_size=2, **FAST_LUT)
    assert len(other.table) == 0  # other settings: another table, never a stale reuse
