"""The plan: one walk over a spec that validation, costs, the builder and lookup tables share."""

from __future__ import annotations

from search_space import load_space, plan, spec_cost
from search_space.costs import op_cost


def test_plan_costs_add_up_to_the_spec_cost() -> None:
    spec = load_space("hybrid").sample(4)
    items = plan(spec)
    assert items[0].role == "stem" and items[-1].role == "head"
    assert sum(op_cost(i).params for i in items) == spec_cost(spec).params
    assert sum(op_cost(i).macs for i in items) == spec_cost(spec).macs


def test_signatures_identify_what_an_op_computes() -> None:
    spec = load_space("isotropic").sample(1)
    items = plan(spec)
    by_signature: dict[str, set[str]] = {}
    for item in items:
        by_signature.setdefault(item.signature(), set()).add(repr(sorted(item.params.items())))
    # a signature never stands for two different parameter sets
    assert all(len(params) == 1 for params in by_signature.values())
    # blocks repeat in an isotropic network, so some signatures are shared (lookup tables reuse)
    assert len(by_signature) < len(items)
    mixers = [i for i in items if i.role == "token_mixer"]
    assert all(i.signature().startswith(f"token_mixer:{i.op.name}[") for i in mixers)
