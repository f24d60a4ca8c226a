"""Analytic costs of a spec, without torch: params, MACs, activation memory, bytes, bit-operations.

The formulas are the registered ops' own (fvcore conventions, see `search_space.ops.base`); the
evaluators cross-check them against MACs counted on the built model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from search_space.ops.base import Cost
from search_space.plan import PlannedOp, plan
from search_space.spec import FLOAT_BITS, ArchSpec

FLOAT_BYTES = 4
# A quantized tensor stores a float scale and an integer zero point per tensor or per channel.
SCALE_BYTES = 8


@dataclass(frozen=True)
class SpecCost:
    """Analytic costs of one architecture for one input sample.

    Attributes:
        params: learnable parameters.
        macs: multiply-accumulates of one forward pass.
        activation_bytes: bytes of the activations a training step keeps for the backward pass,
            at each layer's activation bit-width (float = 4 bytes).
        bytes: bytes of the weights under the quantization policy, scales included.
        bitops: bit-operations: weight x activation MACs times weight bits times activation bits,
            plus activation x activation MACs (attention, scans) times activation bits squared.
    """

    params: int
    macs: int
    activation_bytes: int
    bytes: int
    bitops: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def op_cost(item: PlannedOp) -> Cost:
    """The analytic cost of one planned op."""
    if item.op is None:  # layer scale: one learnable value per channel, an elementwise multiply
        return Cost(params=item.ctx.dim)
    return item.op.cost(item.ctx, item.params)


def _weight_bytes(cost: Cost, item: PlannedOp) -> int:
    bits = item.quant.weight_bits
    if bits >= FLOAT_BITS or cost.params == 0:
        return cost.params * FLOAT_BYTES
    scales = item.ctx.out_dim or item.ctx.dim if item.quant.granularity == "per_channel" else 1
    return math.ceil(cost.params * bits / 8) + scales * SCALE_BYTES


def spec_cost(spec: ArchSpec) -> SpecCost:
    """Sums the analytic costs of every op of ``spec`` (validating it on the way)."""
    params = macs = act_bytes = weight_bytes = bitops = 0
    for item in plan(spec):
        cost = op_cost(item).scaled(item.times)  # shared weights: MACs per application
        w_bits, a_bits = item.quant.weight_bits, item.quant.act_bits
        params += cost.params
        macs += cost.macs
        act_bytes += math.ceil(cost.activations * min(a_bits, FLOAT_BITS) / 8)
        weight_bytes += _weight_bytes(cost, item)
        static = cost.macs - cost.dynamic_macs
        bitops += static * w_bits * a_bits + cost.dynamic_macs * a_bits * a_bits
    return SpecCost(params, macs, act_bytes, weight_bytes, bitops)
