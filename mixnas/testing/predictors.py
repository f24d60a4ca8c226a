"""The contract of a predictor, for the built-ins and for plug-ins; and the lookup-table contract
of a token or channel mixer.

Predictors: ``predictors.create(name, seed=...)`` gives an object whose ``fit(specs, targets)``
accepts specs of a declared space and of NAS-Bench-201, whose ``predict`` returns one finite value
per spec in the targets' unit (positive for latency), whose ``predict_std`` is finite and
non-negative, that follows the targets on held-out specs, repeats itself for a seed, and rejects
bad input with the project's errors (`search_space.SpaceError`). Mixers: each decomposes into a
lookup-table signature that the table can profile (`check_lookup_table_decomposition`).

Use from a plug-in's tests::

    import pytest
    from mixnas.testing.predictors import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_my_predictor(check):
        check("my_predictor")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

import predictors
from search_space import ArchSpec, SpaceError, load_space, spec_cost
from search_space.ops import CHANNEL_MIXERS, TOKEN_MIXERS, OpContext, OpDef

# options that keep each built-in quick in tests (a plug-in passes its own to the checks)
FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "lut": {"warmup": 1, "repeats": 3, "min_sample_ms": 0.05, "statistic": "min"},
}


def hybrid_specs(n: int, seed: int = 0) -> list[ArchSpec]:
    """``n`` specs of the hybrid space at 16x16."""
    space = load_space("hybrid")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        data = space.sample(rng).to_dict()
        data["input"]["resolution"] = [16, 16]
        out.append(ArchSpec.from_dict(data))
    return out


def nb201_specs(n: int, seed: int = 0) -> list[ArchSpec]:
    from search_space.spaces.nb201 import NB201Space

    space, rng = NB201Space(), np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def macs_target(specs: list[ArchSpec]) -> np.ndarray:
    """A latency-like target the predictors can learn: an affine function of the MACs."""
    return np.array([0.2 + spec_cost(s).macs / 2e6 for s in specs])


def create(name: str, seed: int = 0, **options: Any) -> predictors.Predictor:
    return predictors.create(name, seed=seed, **{**FAST_OPTIONS.get(name, {}), **options})


def check_fits_and_predicts_specs_of_any_space(name: str, **options: Any) -> None:
    for specs in (hybrid_specs(30), nb201_specs(30)):
        y = macs_target(specs)
        model = create(name, **options).fit(specs[:20], y[:20])
        mean, std = model.predict(specs[20:]), model.predict_std(specs[20:])
        assert mean.shape == std.shape == (10,)
        assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std >= 0)
        if model.predicts == "latency_ms":
            assert np.all(mean > 0), f"{name}: a latency <= 0"
        assert np.array_equal(model.predict(specs[20:]), mean), "predicting changed the model"
        assert model.predict([]).shape == (0,)
        assert isinstance(model.device, str) and model.predicts


def check_follows_the_targets_on_held_out_specs(
    name: str,
    specs: list[ArchSpec] | None = None,
    targets: np.ndarray | None = None,
    **options: Any,
) -> None:
    """Spearman > 0.6 on 20 held-out specs after fitting 40 (the MACs target by default)."""
    from scipy.stats import spearmanr

    specs = hybrid_specs(60, seed=1) if specs is None else specs
    y = macs_target(specs) if targets is None else targets
    model = create(name, **options).fit(specs[:40], y[:40])
    rho = spearmanr(model.predict(specs[40:]), y[40:])[0]
    assert rho > 0.6, f"{name}: Spearman {rho:.2f} on held-out specs"


def check_same_seed_same_predictions(name: str, **options: Any) -> None:
    specs = hybrid_specs(24, seed=2)
    y = macs_target(specs)
    first = create(name, seed=3, **options).fit(specs[:16], y[:16]).predict(specs[16:])
    again = create(name, seed=3, **options).fit(specs[:16], y[:16]).predict(specs[16:])
    np.testing.assert_allclose(first, again, rtol=1e-9)


def check_bad_input_raises_the_projects_errors(name: str, **options: Any) -> None:
    specs = hybrid_specs(4, seed=4)
    model = create(name, **options)
    with pytest.raises(SpaceError, match="targets"):
        model.fit(specs, [1.0, 2.0])
    with pytest.raises(SpaceError, match="targets"):
        model.fit(specs, [1.0, float("nan"), 2.0, 3.0])
    with pytest.raises(SpaceError, match=r"specs\[1\]"):
        model.fit([specs[0], "not a spec"], [1.0, 2.0])  # type: ignore[list-item]
    if model.log_target:
        with pytest.raises(SpaceError, match="> 0"):
            model.fit(specs, [1.0, -2.0, 3.0, 4.0])


CHECKS: tuple[Callable[..., None], ...] = (
    check_fits_and_predicts_specs_of_any_space,
    check_follows_the_targets_on_held_out_specs,
    check_same_seed_same_predictions,
    check_bad_input_raises_the_projects_errors,
)


def lookup_table_cases(names: Iterable[str] | None = None) -> list[Any]:
    """``pytest.param(op, role, ctx)`` per token and channel mixer named (all when None)."""
    wanted = None if names is None else set(names)
    cases = []
    contexts = (OpContext(dim=32, grid=(6, 6), prefix=1, out_dim=32), OpContext(dim=32, grid=(12,)))
    for registry, role in ((TOKEN_MIXERS, "token_mixer"), (CHANNEL_MIXERS, "channel_mixer")):
        for name in registry.names():
            if wanted is not None and name not in wanted:
                continue
            op = registry.get(name)
            if role == "channel_mixer" and name == "none":
                continue  # a block without a channel mixer plans no op for it
            for ctx in contexts:
                if len(ctx.grid) in op.spatial_dims:
                    label = f"{role}-{name}-{len(ctx.grid)}d"
                    cases.append(pytest.param(op, role, ctx, id=label))
    return cases


def check_lookup_table_decomposition(op: OpDef, role: str, ctx: OpContext) -> None:
    """The op has a lookup-table signature and the table can time it in its layout."""
    from predictors.lut import profile_op
    from predictors.timing import TimingOptions
    from search_space.plan import PlannedOp
    from search_space.spec import FLOAT

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
