"""The cost of a spec's private inference under secure two-party computation (MPC).

MPCViT (Zeng et al., ICCV 2023) and MPCFormer (Li et al., ICLR 2023) search and distil ViTs for
inference where both the input and the model stay secret-shared between two servers: what costs
is communication between them, and the softmax and GeLU dominate it, not the matrix products. To
search for MPC-friendly models we price a spec in that setting, op by op, from the plan.

Protocol (the setting of CrypTen, Knott et al., "CrypTen: Secure Multi-Party Computation Meets
Machine Learning", NeurIPS 2021, which MPCViT and MPCFormer measure with): two parties hold
additive secret shares in the ring Z_(2^64) (8 bytes per element, fixed point); a trusted dealer
supplies Beaver triples offline, so only the online phase is priced. Counting both parties'
messages:

- a bilinear op (linear layer, convolution, matrix product of two secret operands) with a Beaver
  triple opens the masked operands once: ``2 x 8 x (elements of A + elements of B)`` bytes,
  1 round;
- an element-wise product of two secrets: ``2 x 2 x 8`` bytes per element, 1 round;
- a comparison (ReLU, max): CrypTen converts the shares to binary and runs a carry-lookahead
  adder, log2(64) = 6 rounds of AND gates of 64-bit words, then a multiplexer back in arithmetic
  shares (one product): we count ``COMPARE_BYTES`` per element and ``COMPARE_ROUNDS`` rounds;
- exp: CrypTen's limit approximation ``(1 + x / 2^8)^(2^8)``, 8 squarings;
- reciprocal: CrypTen's Newton-Raphson, 10 iterations of ``y (2 - x y)`` (2 products each) from an
  exp-based initial guess (8 products): 28 products in sequence;
- inverse square root (LayerNorm): 3 Newton iterations of 3 products from an exp-based guess;
- sigmoid = reciprocal(1 + exp(-x)); GeLU = x sigmoid(1.702 x) (the sigmoid approximation of GeLU
  that MPC work uses because erf has no cheap protocol); SiLU = x sigmoid(x);
- additions and products with public constants (scaling, average pooling) are local: free.

The counts of products per non-linearity are our derivation from CrypTen's published
approximations and iteration counts (its defaults); the byte and round constants are a model, not
a measurement, and `Network` turns them into time: ``rounds x rtt + bytes / bandwidth``. Ops
without a price here are refused by name (`MPCError`), never priced by a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from search_space.errors import MixnasError
from search_space.plan import PlannedOp, plan
from search_space.spec import ArchSpec

RING_BYTES = 8  # Z_(2^64)
PARTIES = 2
COMPARE_ROUNDS = 7  # log2(64) adder levels + the multiplexer's product
COMPARE_BYTES = PARTIES * (6 * 2 * RING_BYTES + 2 * RING_BYTES)  # AND levels + multiplexer
EXP_PRODUCTS = 8
RECIPROCAL_PRODUCTS = 10 * 2 + EXP_PRODUCTS
INV_SQRT_PRODUCTS = 3 * 3 + EXP_PRODUCTS
SIGMOID_PRODUCTS = EXP_PRODUCTS + RECIPROCAL_PRODUCTS


class MPCError(MixnasError, ValueError):
    """An op of the spec has no MPC price; the message names it and what is priced."""


@dataclass
class MPCCost:
    """Online communication (bytes, both parties) and rounds, with the share of each part."""

    bytes: float = 0.0
    rounds: float = 0.0
    by_part: dict[str, float] = field(default_factory=dict)  # bytes per kind of work

    def add(self, part: str, nbytes: float, rounds: float) -> None:
        self.bytes += nbytes
        self.rounds += rounds
        self.by_part[part] = self.by_part.get(part, 0.0) + nbytes

    def scaled(self, times: int) -> MPCCost:
        return MPCCost(
            self.bytes * times, self.rounds * times, {k: v * times for k, v in self.by_part.items()}
        )


@dataclass(frozen=True)
class Network:
    """The link between the two parties (defaults: a 1 Gbit/s LAN with 0.2 ms round trips)."""

    bandwidth_mbps: float = 1000.0
    rtt_ms: float = 0.2

    def ms(self, cost: MPCCost) -> float:
        return cost.rounds * self.rtt_ms + cost.bytes * 8 / (self.bandwidth_mbps * 1e3)


# -- primitives --------------------------------------------------------------------------------


def bilinear(cost: MPCCost, a_elements: float, b_elements: float, part: str = "matmul") -> None:
    cost.add(part, PARTIES * RING_BYTES * (a_elements + b_elements), 1)


def products(cost: MPCCost, elements: float, sequential: int, part: str) -> None:
    """``sequential`` rounds of element-wise secret products over ``elements`` values."""
    cost.add(part, PARTIES * 2 * RING_BYTES * elements * sequential, sequential)


def compare(cost: MPCCost, elements: float, levels: int = 1, part: str = "compare") -> None:
    """``elements`` comparisons in all, in ``levels`` dependent rounds (a max tree's depth)."""
    cost.add(part, COMPARE_BYTES * elements, COMPARE_ROUNDS * levels)


def activation(cost: MPCCost, name: str, elements: float) -> None:
    if name in ("relu", "relu6"):
        compare(cost, elements, part="relu")
    elif name in ("gelu", "silu", "swish", "sigmoid"):
        # sigmoid, then one more product with x (GeLU's and SiLU's gate)
        products(cost, elements, SIGMOID_PRODUCTS + (name != "sigmoid"), part="gelu")
    elif name in ("identity", "none"):
        return
    else:
        raise MPCError(f"activation {name!r} has no MPC price; priced: relu, gelu, silu, sigmoid")


def layer_norm(cost: MPCCost, rows: float, width: int) -> None:
    # variance: a square per value; 1 / sqrt per row; the normalising product per value
    products(cost, rows * width, 1, "norm")
    products(cost, rows, INV_SQRT_PRODUCTS, "norm")
    products(cost, rows * width, 1, "norm")


def softmax(cost: MPCCost, rows: float, length: int) -> None:
    # the row max by a tree of comparisons (for stability), exp per score, 1 / sum per row, and
    # the normalising product
    depth = math.ceil(math.log2(max(2, length)))
    compare(cost, rows * (length - 1), levels=depth, part="softmax")
    products(cost, rows * length, EXP_PRODUCTS, "softmax")
    products(cost, rows, RECIPROCAL_PRODUCTS, "softmax")
    products(cost, rows * length, 1, "softmax")


# -- ops ---------------------------------------------------------------------------------------


def _norm(cost: MPCCost, name: str, rows: float, width: int) -> None:
    if name in ("layernorm", "rmsnorm", "groupnorm"):
        layer_norm(cost, rows, width)
    elif name == "batchnorm":  # inference: a per-channel affine map with secret parameters
        products(cost, rows * width, 1, "norm")
    elif name != "none":
        raise MPCError(f"norm {name!r} has no MPC price; priced: layernorm, rmsnorm, batchnorm")


def _attention(cost: MPCCost, item: PlannedOp) -> None:
    p, t, d = item.params, item.ctx.tokens, item.ctx.dim
    heads, hd = d // p["head_dim"], p["head_dim"]
    bilinear(cost, t * d, d * 3 * d)  # qkv
    bilinear(cost, heads * t * hd, heads * hd * t)  # Q K^T, per head
    scores = p.get("scores", "softmax")
    if scores == "softmax":
        softmax(cost, heads * t, t)
    elif scores == "relu":  # ReLU, 1 / row sum, the normalising product
        compare(cost, heads * t * t, part="relu_attention")
        products(cost, heads * t, RECIPROCAL_PRODUCTS, "relu_attention")
        products(cost, heads * t * t, 1, "relu_attention")
    # "scale": a division by the (public) number of keys, local
    bilinear(cost, heads * t * t, heads * t * hd)  # A V
    bilinear(cost, t * d, d * d)  # output projection


_FREE = {
    ("token_mixer", "identity"),
    ("token_mixer", "none"),
    ("token_mixer", "pooling"),
    ("channel_mixer", "none"),
    ("downsample", "none"),
}


def _op_cost(item: PlannedOp) -> MPCCost:
    cost = MPCCost()
    name = item.op.name if item.op is not None else item.role
    ctx, p = item.ctx, item.params
    kind = item.op.kind if item.op is not None else item.role
    if item.role.startswith("layer_scale"):
        products(cost, ctx.tokens * ctx.dim, 1, "scale")
    elif kind == "norm":
        _norm(cost, name, ctx.tokens, ctx.dim)
    elif kind == "stem" and name == "patch_embed":
        k = p["patch_size"]
        out = math.prod(item.op.out_grid(ctx, p)) if item.op is not None else ctx.n
        bilinear(cost, out * k * k * ctx.dim, k * k * ctx.dim * ctx.out_dim)
        _norm(cost, p["norm"], out, ctx.out_dim)
    elif kind == "token_mixer" and name == "attention":
        _attention(cost, item)
    elif (kind, name) in _FREE:
        pass  # no secret product: average pooling divides by a public count
    elif kind == "channel_mixer" and name == "mlp":
        hidden = round(p["ratio"] * ctx.dim)
        bilinear(cost, ctx.tokens * ctx.dim, ctx.dim * hidden)
        activation(cost, p["act"], ctx.tokens * hidden)
        bilinear(cost, ctx.tokens * hidden, hidden * ctx.dim)
    elif kind == "downsample" and name in ("conv", "patch_merging"):
        out = math.prod(item.op.out_grid(ctx, p)) if item.op is not None else ctx.n
        k = p.get("kernel", 2)
        if name == "conv":
            if p["norm"] != "none" and p["norm_position"] == "pre":
                _norm(cost, p["norm"], ctx.n, ctx.dim)
            bilinear(cost, out * k * k * ctx.dim, k * k * ctx.dim * ctx.out_dim)
            if p["norm"] != "none" and p["norm_position"] == "post":
                _norm(cost, p["norm"], out, ctx.out_dim)
        else:
            merged = ctx.dim * 2 ** len(ctx.grid)
            _norm(cost, p["norm"], out, merged)
            bilinear(cost, out * merged, merged * ctx.out_dim)
    elif kind == "head" and name == "classifier" and not p.get("hidden"):
        bilinear(cost, ctx.dim, ctx.dim * ctx.num_classes)  # after a (local) average pool
    else:
        raise MPCError(
            f"{item.path}: {kind} {name!r} has no MPC price; priced: patch_embed stems, "
            "attention (softmax, relu, scale scores), identity/pooling mixers, mlp channel "
            "mixers (relu, gelu, silu), layernorm/rmsnorm/batchnorm, conv and patch_merging "
            "downsamplers, a classifier head without hidden layer"
        )
    return cost.scaled(item.times) if getattr(item, "times", 1) > 1 else cost


def mpc_cost(spec: ArchSpec) -> MPCCost:
    """The whole spec's online communication and rounds for one input (see the module doc)."""
    total = MPCCost()
    for item in plan(spec):
        part = _op_cost(item)
        total.bytes += part.bytes
        total.rounds += part.rounds
        for key, value in part.by_part.items():
            total.by_part[key] = total.by_part.get(key, 0.0) + value
    return total


def mpc_metrics(spec: ArchSpec, network: Network | None = None) -> Mapping[str, Any]:
    """``mpc_ms``, ``mpc_mb``, ``mpc_rounds`` and the non-linear share of the bytes."""
    net = network or Network()
    cost = mpc_cost(spec)
    linear = cost.by_part.get("matmul", 0.0)
    return {
        "mpc_ms": net.ms(cost),
        "mpc_mb": cost.bytes / 1e6,
        "mpc_rounds": cost.rounds,
        "mpc_nonlinear_share": 0.0 if cost.bytes == 0 else 1.0 - linear / cost.bytes,
    }
