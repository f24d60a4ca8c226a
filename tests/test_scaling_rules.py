"""Scaling rules (search_space.scaling): budgets met, monotone ladders, valid widths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search_space import InfeasibleError, SpaceError, load_space, spec_cost, validate_spec, zoo
from search_space.scaling import (
    Dims,
    ScalingRule,
    apply_dims,
    depth_rule,
    grow_ladder,
    scale_ladder,
    search_coefficients,
    width_quantum,
    width_rule,
)

BUDGETS = [2e6, 4e6, 8e6, 1.6e7]


def macs(spec):
    return spec_cost(spec).macs


def params(spec):
    return spec_cost(spec).params


@pytest.fixture(scope="module")
def base():
    return load_space("hybrid_cpu").sample(np.random.default_rng(0))


def _check_family(members, budgets, cost_fn):
    assert [m.budget for m in members] == list(budgets)
    for m in members:
        validate_spec(m.spec)
        assert cost_fn(m.spec) == m.cost <= m.budget  # measured, not just claimed
        for st, w in zip(m.spec.stages, m.spec.widths, strict=True):
            assert w % width_quantum(st) == 0
    costs = [m.cost for m in sorted(members, key=lambda m: m.budget)]
    assert costs == sorted(costs)


@pytest.mark.parametrize("rule", [ScalingRule(), width_rule(), depth_rule()], ids=lambda r: r.name)
@pytest.mark.parametrize("cost_fn", [macs, params])
def test_every_member_meets_its_budget_and_ladder_is_monotone(base, rule, cost_fn):
    budgets = [b * (1 if cost_fn is macs else 0.1) for b in BUDGETS]
    members = scale_ladder(rule, base, cost_fn, budgets)
    _check_family(members, budgets, cost_fn)
    # the family uses its budgets: the top member is well past the base
    assert members[-1].cost > 2 * cost_fn(base)


def test_rules_change_only_their_dimensions(base):
    top = scale_ladder(width_rule(), base, macs, [1.6e7])[0].dims
    assert top.depths == tuple(base.depths) and top.resolution == 32
    assert all(w > w0 for w, w0 in zip(top.widths, base.widths, strict=True))
    deep = scale_ladder(depth_rule(), base, macs, [1.6e7])[0].dims
    assert deep.widths == tuple(base.widths) and sum(deep.depths) > sum(base.depths)


def test_attention_widths_stay_multiples_of_head_dim():
    spec = zoo.get("deit_t")  # head_dim 64: widths move in steps of 64
    assert width_quantum(spec.stages[0]) == 64
    members = scale_ladder(width_rule(), spec, macs, [6e8, 2.5e9])
    _check_family(members, [6e8, 2.5e9], macs)
    assert all(w % 64 == 0 for m in members for w in m.spec.widths)


def test_invalid_dims_raise(base):
    dims = Dims.of(base)
    with pytest.raises(SpaceError, match="head"):
        apply_dims(zoo.get("deit_t"), Dims((12,), (200,), 224))
    with pytest.raises(SpaceError, match="depth"):
        apply_dims(base, Dims((0, *dims.depths[1:]), dims.widths, 32))


def test_stretching_depth_keeps_the_tail_block(base):
    grown = apply_dims(base, Dims(tuple(d * 3 for d in base.depths), tuple(base.widths), 32))
    for st, st0 in zip(grown.stages, base.stages, strict=True):
        assert st.blocks[-1] == st0.blocks[-1]
        assert set(st.blocks) == set(st0.blocks)


def test_budget_below_the_smallest_member_is_infeasible(base):
    with pytest.raises(InfeasibleError, match="budget"):
        scale_ladder(width_rule(), base, macs, [10.0])
    with pytest.raises(SpaceError, match="budget"):
        scale_ladder(width_rule(), base, macs, [-1.0])


def test_bad_coefficients_raise(base):
    with pytest.raises(SpaceError, match=r"rule\.alpha"):
        ScalingRule(alpha=(1.2, 1.2)).at(base, 1.0)  # 3 stages
    with pytest.raises(SpaceError, match=r"rule\.beta"):
        ScalingRule(beta=0.5).at(base, 1.0)


def test_per_stage_growth_grows_only_the_named_stage(base):
    rule = ScalingRule(alpha=(1.0, 1.0, 1.5), beta=1.0, gamma=1.0, name="last-stage")
    m = scale_ladder(rule, base, macs, [8e6])[0]
    assert m.dims.depths[:2] == tuple(base.depths[:2]) and m.dims.depths[2] > base.depths[2]


def test_coefficient_search_maximises_the_score(base):
    # a score that rewards depth only: the chosen triple must give the deepest phi=1 member
    rule = search_coefficients(base, lambda s: sum(s.depths) - 1e-3 * sum(s.widths))
    grid = (1.0, 1.1, 1.2, 1.3, 1.4)
    admissible = [
        ScalingRule(a, b, g)
        for a in grid
        for b in grid
        for g in grid
        if abs(a * b * b * g * g - 2.0) <= 0.3
    ]
    deepest = max(sum(r.at(base, 1.0).depths) for r in admissible)
    assert sum(rule.at(base, 1.0).depths) == deepest > sum(base.depths)
    assert abs(rule.alpha * rule.beta**2 * rule.gamma**2 - 2.0) <= 0.3


def test_growth_follows_the_score_and_meets_budgets(base):
    # score rewards width of the last stage only, so growth should widen stage 2 first
    def score(s):
        return math.log(s.widths[-1])

    members = grow_ladder(base, macs, score, BUDGETS)
    _check_family(members, BUDGETS, macs)
    first = members[0].note.split(": ")[1].split(", ")[0]
    assert first.startswith("width[2]")
    # no single move fits on top of a member in its own budget (the budget is used up)
    assert members[-1].cost > 0.5 * BUDGETS[-1]


def test_growth_shrinks_a_seed_that_is_over_the_smallest_budget(base):
    small = [0.5 * macs(base), macs(base)]
    members = grow_ladder(base, macs, lambda s: float(sum(s.depths)), small)
    _check_family(members, small, macs)
