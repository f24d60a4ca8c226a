"""The MPC cost model (predictors.mpc) and its evaluator: formulas of the primitives, the order
of the attention variants, the network model, and one-line refusals of unpriced ops."""

from __future__ import annotations

import pytest

import evaluators
from predictors.mpc import (
    COMPARE_BYTES,
    EXP_PRODUCTS,
    RECIPROCAL_PRODUCTS,
    RING_BYTES,
    MPCCost,
    MPCError,
    Network,
    bilinear,
    mpc_cost,
    softmax,
)
from search_space import ArchSpec, load_space
from search_space.zoo import get

ROOT_SPACE = "recipes/spaces/mpcvit.yaml"


def _vit(scores: str, act: str = "gelu") -> ArchSpec:
    from pathlib import Path

    space = load_space(str(Path(__file__).resolve().parents[1] / ROOT_SPACE))
    data = space.sample(0).to_dict()
    for stage in data["stages"]:
        for block in stage["blocks"]:
            block["token_mixer"]["params"]["scores"] = scores
            block["channel_mixer"]["params"]["act"] = act
    return ArchSpec.from_dict(data)


def test_a_beaver_product_opens_both_operands_once() -> None:
    cost = MPCCost()
    bilinear(cost, 10 * 4, 4 * 6)
    assert cost.bytes == 2 * RING_BYTES * (40 + 24) and cost.rounds == 1


def test_softmax_counts_a_max_tree_exp_and_one_reciprocal_per_row() -> None:
    cost = MPCCost()
    softmax(cost, rows=3, length=8)
    products = 2 * 2 * RING_BYTES
    expected = (
        COMPARE_BYTES * 3 * 7  # 7 comparisons per row of 8
        + products * 3 * 8 * EXP_PRODUCTS
        + products * 3 * RECIPROCAL_PRODUCTS
        + products * 3 * 8
    )
    assert cost.bytes == expected
    assert cost.rounds == 7 * 3 + EXP_PRODUCTS + RECIPROCAL_PRODUCTS + 1  # depth log2(8) = 3


def test_cheaper_attention_and_relu_cost_less_and_linear_parts_are_unchanged() -> None:
    soft, relu, scale = (mpc_cost(_vit(s)) for s in ("softmax", "relu", "scale"))
    assert soft.bytes > relu.bytes > scale.bytes
    assert soft.rounds > relu.rounds > scale.rounds
    assert soft.by_part["matmul"] == relu.by_part["matmul"] == scale.by_part["matmul"]
    assert "softmax" not in scale.by_part and "relu_attention" not in scale.by_part
    assert mpc_cost(_vit("softmax", "relu")).bytes < soft.bytes


def test_the_network_turns_rounds_and_bytes_into_time() -> None:
    cost = MPCCost(bytes=1e6, rounds=10)
    assert Network(bandwidth_mbps=8.0, rtt_ms=1.0).ms(cost) == pytest.approx(10 + 1000)


def test_non_linear_ops_dominate_a_vit_at_224() -> None:
    metrics = evaluators.create("mpc_cost").evaluate(get("deit_t")).metrics
    assert metrics["mpc_nonlinear_share"] > 0.8  # MPCFormer's and MPCViT's observation


def test_an_unpriced_op_is_refused_by_name() -> None:
    spec = load_space("hybrid_cpu").sample(0)
    with pytest.raises(MPCError, match="has no MPC price"):
        mpc_cost(spec)
    result = evaluators.create("mpc_cost").evaluate(spec)
    assert result.status == "failed" and "has no MPC price" in result.error
