"""Analytic costs of a spec, without torch: params, MACs, activation memory, bytes, bit-operations.

The formulas are the registered ops' own (fvcore conventions, see `search_space.ops.base`); the
evaluators cross-check them against MACs counted on the built model.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass

from search_space.errors import SpaceError
from search_space.ops.base import Cost
from search_space.plan import PlannedOp, plan
from search_space.spec import FLOAT_BITS, ArchSpec

FLOAT_BYTES = 4
# A quantized tensor stores a float scale and an integer zero point per tensor or per channel.
SCALE_BYTES = 8

# MAC-counting conventions a published figure can have been produced under (`macs_as_counted`).
COUNTER_MIXNAS = "mixnas"  # every MAC of the analytic model, FFTs included
COUNTER_FVCORE = "fvcore"  # fvcore (and timm's infer_gmacs): no FFTs
COUNTER_MODULE_HOOKS = "module_hooks"  # ptflops, mmcv, thop: leaf nn.Module layers only
COUNTERS = (COUNTER_MIXNAS, COUNTER_FVCORE, COUNTER_MODULE_HOOKS)


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


_RECENT_COSTS: OrderedDict[str, SpecCost] = OrderedDict()
_RECENT_LIMIT = 4096


def spec_cost(spec: ArchSpec) -> SpecCost:
    """Sums the analytic costs of every op of ``spec`` (validating it on the way).

    The costs of recently priced specs are remembered by spec id: a search prices each
    candidate when its space checks the constraints and again when the ``cost`` evaluator runs.
    """
    cached = _RECENT_COSTS.get(spec.id)
    if cached is not None:
        _RECENT_COSTS.move_to_end(spec.id)
        return cached
    cost = _spec_cost(spec)
    _RECENT_COSTS[spec.id] = cost
    if len(_RECENT_COSTS) > _RECENT_LIMIT:
        _RECENT_COSTS.popitem(last=False)
    return cost


def _spec_cost(spec: ArchSpec) -> SpecCost:
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


def check_counter(counter: str, field: str = "counter") -> None:
    """Raises `SpaceError` naming ``field`` and the allowed values if ``counter`` is unknown."""
    if counter not in COUNTERS:
        allowed = ", ".join(COUNTERS)
        raise SpaceError(field, f"unknown MAC counter; allowed: {allowed}", value=counter)


def total_cost(spec: ArchSpec) -> Cost:
    """The analytic `Cost` of every op of ``spec`` summed, its dynamic and FFT parts kept."""
    total = Cost()
    for item in plan(spec):
        total += op_cost(item).scaled(item.times)
    return total


def macs_as_counted(spec: ArchSpec, counter: str) -> int:
    """The analytic MACs of ``spec`` as the MAC counter ``counter`` would report them.

    Papers publish MACs from whatever counter their code used, and counters disagree on what
    counts. The zoo compares a published figure with this value under the convention recorded
    for it (`search_space.zoo.registry.Published.counter`):

    - ``"mixnas"``: every MAC of the analytic model (`spec_cost`), FFTs at `fft_macs`.
    - ``"fvcore"``: fvcore counts nothing for FFTs, so their part (`Cost.fft_macs`) is left out.
      Attention matmuls stay in: fvcore counts explicit ``q @ k`` / ``attn @ v`` matmuls, and
      timm's benchmark tables (``infer_gmacs``) are fvcore counts that include them.
    - ``"module_hooks"``: ptflops, mmcv's ``get_model_complexity_info`` and thop count leaf
      ``nn.Module`` layers through forward hooks, so functional ops are missed as well: the
      activation x activation MACs (`Cost.dynamic_macs`: attention scores and weighted sums,
      selective scans, deformable sampling, which reference code runs as tensor ops or custom
      autograd functions, not as modules) and the FFTs. (ptflops does hook
      ``nn.MultiheadAttention``; a paper whose attention is that module is closer to
      ``"fvcore"``.)

    The result is an approximation for ``"module_hooks"``: those counters also differ in small
    ways (norms and activations counted as elementwise FLOPs, a MAC per bias), which this does
    not model. On the model checked (SpectFormer-H-S) it lands within 1% of the published
    ptflops-style figure.

    Raises:
        SpaceError: ``counter`` is not one of `COUNTERS`.
    """
    check_counter(counter)
    cost = total_cost(spec)
    if counter == COUNTER_MIXNAS:
        return cost.macs
    if counter == COUNTER_FVCORE:
        return cost.macs - cost.fft_macs
    return cost.macs - cost.fft_macs - cost.dynamic_macs
