"""Behaviour of the training-free proxies and the ``proxy`` evaluator."""

from __future__ import annotations

import math

import pytest

from evaluators import EvalContext, create
from evaluators.proxies import PROXIES, compute, compute_detailed
from search_space import ArchSpec, Block, InputSpec, Op, Stage, spec_cost
from search_space.ops import CHANNEL_MIXERS, HEADS, STEMS, TOKEN_MIXERS
from search_space.spaces.nb201 import from_arch_str


def _net(width: int, depth: int, mixer: str = "dwconv") -> ArchSpec:
    block = Block(
        Op.of(mixer, TOKEN_MIXERS.get(mixer).complete({}, mixer)),
        Op.of("mlp", CHANNEL_MIXERS.get("mlp").complete({"ratio": 2.0}, "mlp")),
    )
    stem = Op.of("patch_embed", STEMS.get("patch_embed").complete({"patch_size": 4}, "stem"))
    return ArchSpec(
        InputSpec("image", 10, channels=3, resolution=(16, 16)),
        stem,
        (Stage(width, Op.of("none"), (block,) * depth),),
        Op.of("classifier", HEADS.get("classifier").complete({}, "head")),
    )


def test_static_proxies_equal_spec_cost() -> None:
    spec = _net(32, 2)
    scores = compute(spec, ["params", "macs"], batch_size=4)
    cost = spec_cost(spec)
    assert scores == {"params": float(cost.params), "macs": float(cost.macs)}


@pytest.mark.parametrize("name", ["synflow", "zen"])
def test_larger_network_ranks_higher(name: str) -> None:
    small = compute(_net(16, 1), [name], batch_size=8)[name]
    large = compute(_net(64, 4), [name], batch_size=8)[name]
    assert math.isfinite(small) and math.isfinite(large)
    assert large > small


def test_synflow_ranks_all_none_cell_below_all_conv_cell() -> None:
    none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    conv = (
        "|" + "|+|".join("|".join(f"nor_conv_3x3~{i}" for i in range(j)) for j in (1, 2, 3)) + "|"
    )
    scores = [
        compute(from_arch_str(a, dataset="ImageNet16-120"), ["synflow"])["synflow"]
        for a in (none, conv)
    ]
    assert all(math.isfinite(s) for s in scores)
    assert scores[0] < scores[1]


def test_compute_returns_exactly_the_requested_names() -> None:
    requested = ["snip", "params", "nwot"]
    scores = compute(_net(16, 1), requested, batch_size=4)
    assert list(scores) == requested


def test_unknown_proxy_raises_key_error_listing_known_ones() -> None:
    with pytest.raises(KeyError) as info:
        compute(_net(16, 1), ["synflow", "no_such_proxy"])
    text = str(info.value)
    assert "no_such_proxy" in text
    assert all(name in text for name in PROXIES.names())


def test_unscorable_model_gives_nan_with_reason() -> None:
    # the all-`none` cell cuts the input off: the input Jacobian is zero, jacov cannot score it
    spec = from_arch_str(
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", dataset="ImageNet16-120"
    )
    score = compute_detailed(spec, ["jacov"], batch_size=4)["jacov"]
    assert math.isnan(score.value) and "Jacobian" in score.error


def test_user_data_is_used() -> None:
    from evaluators.proxies import default_batch

    spec = _net(16, 1)
    a = compute(spec, ["snip"], data=default_batch(spec, 8, seed=1), batch_size=8)
    b = compute(spec, ["snip"], data=default_batch(spec, 8, seed=2), batch_size=8)
    assert a != b


def test_proxy_evaluator_reports_metrics_and_timings() -> None:
    evaluator = create("proxy", names=["synflow", "params"], batch_size=4)
    result = evaluator.evaluate(_net(16, 1), EvalContext(seed=1))
    assert result.ok, result.error
    assert set(result.metrics) == {"proxy:synflow", "proxy:params"}
    assert {"proxy:synflow", "proxy:params"} <= set(result.timings)
    failed = create("proxy", names=["jacov"], batch_size=4).evaluate(
        from_arch_str("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", dataset="ImageNet16-120")
    )
    assert failed.status == "failed" and "jacov" in failed.error
