"""Behaviour of the training-free proxies and the ``proxy`` evaluator."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

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


# -- grasp: exact Hessian-vector product -----------------------------------------------------------


def _grasp_reference(spec: ArchSpec, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    """GraSP by plain double backward (Wang et al. 2020), on the ops' twice-differentiable paths."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from search_space import build_model

    model = build_model(spec, seed=0).train()
    ws = [p for p in model.parameters() if p.dim() >= 2]
    x, y = data
    with sdpa_kernel(SDPBackend.MATH):
        g = torch.autograd.grad(F.cross_entropy(model(x), y), ws, allow_unused=True)
        gf = torch.autograd.grad(F.cross_entropy(model(x), y), ws, create_graph=True)
        z = sum((a.detach() * b).sum() for a, b in zip(g, gf, strict=True))
        hg = torch.autograd.grad(z, ws)
    return float(
        sum(-(w.detach().double() * h.double()).sum() for w, h in zip(ws, hg, strict=True))
    )


@pytest.mark.parametrize("mixer", ["pooling", "attention"])
def test_grasp_is_the_exact_double_backward_value(mixer: str) -> None:
    from evaluators.proxies import default_batch

    spec = _net(32, 1, mixer)
    data = default_batch(spec, 6, seed=2)
    ours = compute(spec, ["grasp"], data=data, seed=0)["grasp"]
    assert ours == pytest.approx(_grasp_reference(spec, data), rel=1e-4)


def test_grasp_takes_the_exact_path_through_the_scan(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="evaluators.proxies.gradient")
    score = compute_detailed(_net(16, 1, "selective_ssm"), ["grasp"], batch_size=4)["grasp"]
    assert score.ok, score.error
    assert "finite difference" not in caplog.text


# -- dss, ntk_cond, linear_regions ----------------------------------------------------------------


def test_dss_counts_attention_weights_by_nuclear_norm() -> None:
    from evaluators.proxies.families import attention_classes
    from evaluators.proxies.transformer import _attention_weights
    from search_space import build_model
    from search_space.nn.mixers.attention import Attention
    from search_space.nn.mixers.conv import DwConv

    classes = attention_classes()
    assert Attention in classes and DwConv not in classes
    model = build_model(_net(32, 1, "attention"))
    mixer = next(m for m in model.modules() if isinstance(m, Attention))
    chosen = _attention_weights(model)
    assert chosen == {id(p) for p in mixer.parameters() if p.dim() >= 2}
    assert not _attention_weights(build_model(_net(16, 1, "dwconv")))


def test_dss_is_data_free_and_grows_with_the_network() -> None:
    from evaluators.proxies import default_batch

    spec = _net(32, 1, "attention")
    a = compute(spec, ["dss"], data=default_batch(spec, 4, seed=1))["dss"]
    b = compute(spec, ["dss"], data=default_batch(spec, 4, seed=2))["dss"]
    assert a == b
    assert compute(_net(64, 3, "attention"), ["dss"], batch_size=4)["dss"] > a


def test_ntk_cond_is_minus_a_log_condition_number() -> None:
    from evaluators.proxies import default_batch

    spec = _net(16, 1)
    x, y = default_batch(spec, 4, seed=0)
    varied = compute(spec, ["ntk_cond"], data=(x, y))["ntk_cond"]
    assert math.isfinite(varied) and varied < 0  # a condition number is >= 1
    # identical samples: a rank-one kernel, scored at the floor (condition number 1e12)
    same = compute(spec, ["ntk_cond"], data=(x[:1].expand_as(x).clone(), y))["ntk_cond"]
    assert same == pytest.approx(-math.log(1e12), rel=1e-6)
    assert varied > same


def test_linear_regions_counts_crossings_along_segments() -> None:
    from evaluators.proxies import default_batch

    small, large = _net(16, 1), _net(64, 4)
    x, y = default_batch(small, 4, seed=0)
    # segments of zero length cross no boundary: one region each, log 1 = 0
    still = compute(small, ["linear_regions"], data=(x[:1].expand_as(x).clone(), y))
    assert still["linear_regions"] == 0.0
    few = compute(small, ["linear_regions"], data=(x, y))["linear_regions"]
    many = compute(large, ["linear_regions"], data=(x, y))["linear_regions"]
    assert 0.0 < few < many


def test_dominant_group_follows_the_majority_of_blocks() -> None:
    from evaluators.proxies.families import dominant_group, mixer_group

    assert mixer_group("window_attention") == "attention"
    assert mixer_group("lka") == "conv"
    assert dominant_group(_net(32, 3, "attention")) == "attention"
    assert dominant_group(_net(16, 2, "global_filter")) == "spectral"
