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
from predictors.lut import profile_op
from predictors.timing import Timing, TimingOptions, measure_spec
from search_space import ArchSpec, SpaceError, load_space, spec_cost
from search_space.ops import CHANNEL_MIXERS, TOKEN_MIXERS, OpContext
from search_space.plan import PlannedOp
from search_space.spaces.nb201 import NB201Space
from search_space.spec import FLOAT

NAMES = predictors.names()
# minima: the machine running the tests is shared, and the minimum repeats far better there
FAST_LUT = {"warmup": 1, "repeats": 3, "min_sample_ms": 0.05, "statistic": "min"}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    # one table per test session: lookup tables profile on this machine, never in ~/.cache
    monkeypatch.setenv("MIXNAS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _hybrid(n: int, seed: int = 0) -> list[ArchSpec]:
    space = load_space("hybrid")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        data = space.sample(rng).to_dict()
        data["input"]["resolution"] = [16, 16]
        out.append(ArchSpec.from_dict(data))
    return out


def _nb201(n: int, seed: int = 0) -> list[ArchSpec]:
    space, rng = NB201Space(), np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def _target(specs: list[ArchSpec]) -> np.ndarray:
    """A latency-like target the predictors can learn: an affine function of the MACs."""
    return np.array([0.2 + spec_cost(s).macs / 2e6 for s in specs])


def _measured(specs: list[ArchSpec]) -> np.ndarray:
    options = TimingOptions(warmup=1, repeats=5, min_sample_ms=0.5)
    return np.array([measure_spec(s, options).min_ms for s in specs])


def _create(name: str, seed: int = 0) -> predictors.Predictor:
    return predictors.create(name, seed=seed, **(FAST_LUT if name == "lut" else {}))


def test_registry_lists_the_issue_predictors() -> None:
    assert {"macs_linear", "ridge", "gbt", "mlp", "lut", "roofline", "transfer", "gp", "rf"} <= set(
        NAMES
    )
    with pytest.raises(KeyError, match="known"):
        predictors.create("no_such_predictor")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("family", ["hybrid", "nb201"])
def test_fits_and_predicts_specs_of_any_space(name: str, family: str) -> None:
    specs = (_hybrid if family == "hybrid" else _nb201)(30)
    y = _target(specs)
    model = _create(name).fit(specs[:20], y[:20])
    mean, std = model.predict(specs[20:]), model.predict_std(specs[20:])
    assert mean.shape == std.shape == (10,)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std >= 0)
    if model.predicts == "latency_ms":
        assert np.all(mean > 0)
    assert np.array_equal(model.predict(specs[20:]), mean)  # predicting does not change the model
    assert model.predict([]).shape == (0,)
    assert isinstance(model.device, str) and model.predicts


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
    y = _measured(specs) if name == "lut" else _target(specs)
    model = _create(name).fit(specs[:40], y[:40])
    rho = spearmanr(model.predict(specs[40:]), y[40:])[0]
    assert rho > 0.6, f"{name}: Spearman {rho:.2f} on held-out specs"


@pytest.mark.slow  # wall-clock latency: noisy while other test workers share the cores
def test_lookup_table_follows_measured_latency_on_held_out_specs() -> None:
    specs = _hybrid(60, seed=1)
    y = _measured(specs)
    model = _create("lut").fit(specs[:40], y[:40])
    rho = spearmanr(model.predict(specs[40:]), y[40:])[0]
    assert rho > 0.6, f"lut: Spearman {rho:.2f} on held-out specs against measured latency"


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_predictions(name: str) -> None:
    specs = _hybrid(24, seed=2)
    y = _target(specs)
    first = _create(name, seed=3).fit(specs[:16], y[:16]).predict(specs[16:])
    again = _create(name, seed=3).fit(specs[:16], y[:16]).predict(specs[16:])
    np.testing.assert_allclose(first, again, rtol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_the_projects_errors(name: str) -> None:
    specs = _hybrid(4, seed=4)
    model = _create(name)
    with pytest.raises(SpaceError, match="targets"):
        model.fit(specs, [1.0, 2.0])
    with pytest.raises(SpaceError, match="targets"):
        model.fit(specs, [1.0, float("nan"), 2.0, 3.0])
    with pytest.raises(SpaceError, match=r"specs\[1\]"):
        model.fit([specs[0], "not a spec"], [1.0, 2.0])  # type: ignore[list-item]
    if model.log_target:
        with pytest.raises(SpaceError, match="> 0"):
            model.fit(specs, [1.0, -2.0, 3.0, 4.0])


def _mixer_cases() -> list:
    cases = []
    contexts = (OpContext(dim=32, grid=(6, 6), prefix=1, out_dim=32), OpContext(dim=32, grid=(12,)))
    for registry, role in ((TOKEN_MIXERS, "token_mixer"), (CHANNEL_MIXERS, "channel_mixer")):
        for name in registry.names():
            op = registry.get(name)
            if role == "channel_mixer" and name == "none":
                continue  # a block without a channel mixer plans no op for it
            for ctx in contexts:
                if len(ctx.grid) in op.spatial_dims:
                    label = f"{role}-{name}-{len(ctx.grid)}d"
                    cases.append(pytest.param(op, role, ctx, id=label))
    return cases


@pytest.mark.parametrize(("op", "role", "ctx"), _mixer_cases())
def test_every_mixer_has_a_lookup_table_decomposition(op, role: str, ctx: OpContext) -> None:
    params = op.complete({}, "params")
    try:
        op.check_rules(ctx, params, "op")
    except SpaceError:  # the other case: no class token, or one (class attention needs it)
        ctx = OpContext(dim=ctx.dim, grid=ctx.grid, prefix=int(not ctx.prefix), out_dim=ctx.dim)
        op.check_rules(ctx, params, "op")
    item = PlannedOp("stages[0].blocks[0]", role, op, ctx, params, FLOAT, 0, 0)
    signature = item.signature()
    assert (
        signature.startswith(f"{role}:{op.name}[")
        and f"g{'x'.join(map(str, ctx.grid))}" in signature
    )
    timing = profile_op(item, None, TimingOptions(warmup=1, repeats=2, min_sample_ms=0.01))  # type: ignore[arg-type]
    assert timing.median_ms > 0


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
