"""Fixed-length features of any spec, from its plan: analytic costs, op counts, op parameters.

Learned predictors need one numeric vector per spec, for specs of any space (a declared space, the
NB201 space, a zoo model), so the features come from `search_space.plan` rather than from one
space's decision encoding:

* totals: MACs, params, weight bytes, activation bytes, memory traffic (weights plus each op's
  input and output tensors), op and block counts, input tokens;
* per op kind (role and registered name): count, MACs and memory traffic, which is how a model
  sees that an attention block at high resolution costs more than a conv of the same MACs;
* per stage: width, depth, tokens and MACs;
* op parameter tokens (``token_mixer:dwconv:kernel=7``, tuple values per position, e.g. the six
  edges of an NB201 cell) and bit-widths, counted: the space encoding, space-independently.

Features are a sparse mapping name -> value; `FeatureMap` fixes the names at fit time so that
`transform` gives the same columns later (names unseen at fit are dropped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from search_space.costs import FLOAT_BYTES, op_cost, spec_cost
from search_space.plan import PlannedOp, plan
from search_space.spec import FLOAT_BITS, ArchSpec

_CACHE_LIMIT = 50_000
_cache: dict[str, dict[str, float]] = {}


@dataclass(frozen=True)
class OpCost:
    """What a roofline or a lookup table needs of one planned op."""

    macs: int
    weight_bytes: float
    traffic_bytes: float  # weights + input + output tensors
    tokens: int


def tokens_of(item: PlannedOp) -> int:
    return math.prod(item.ctx.grid) + item.ctx.prefix


def op_costs(item: PlannedOp) -> OpCost:
    """MACs and bytes moved by one op (tensors at the op's activation bit-width, float = 4 B)."""
    cost = op_cost(item)
    q = item.quant
    w_bytes = cost.params * (FLOAT_BYTES if q.weight_bits >= FLOAT_BITS else q.weight_bits / 8)
    a_bytes = FLOAT_BYTES if q.act_bits >= FLOAT_BITS else q.act_bits / 8
    tokens = tokens_of(item)
    out_dim = item.ctx.out_dim or item.ctx.dim
    if item.role == "head":
        out_tokens, out_dim = 1, item.ctx.num_classes or out_dim
    else:
        out_tokens = tokens
    traffic = w_bytes + a_bytes * (tokens * item.ctx.dim + out_tokens * out_dim)
    return OpCost(cost.macs, w_bytes, traffic, tokens)


def _param_tokens(prefix: str, params: Mapping[str, object]) -> list[str]:
    out: list[str] = []
    for key, value in sorted(params.items()):
        if isinstance(value, tuple | list):
            out.extend(f"{prefix}:{key}[{i}]={v}" for i, v in enumerate(value))
        else:
            out.append(f"{prefix}:{key}={value}")
    return out


def live_edge_ops(edges: Sequence[int]) -> list[str]:
    """The ops of a NAS-Bench-201 cell on a path to the cell's output.

    A graph compiler (TFLite, as HW-NAS-Bench used on phones and the Raspberry Pi) removes ops
    whose result only flows into ``none`` edges, so such cells time at almost nothing there;
    eager PyTorch runs every op. The model gets both views (all ops, and the live ones).
    """
    from search_space.ops.token_mixers.nb201 import EDGES, NUM_NODES, OPS

    ops = [OPS[e] for e in edges]
    used = [(dst, src, op) for (dst, src), op in zip(EDGES, ops, strict=True) if op != "none"]
    feeds = {NUM_NODES - 1}  # nodes whose value reaches the output
    for dst, src, _ in sorted(used, key=lambda e: -e[0]):
        if dst in feeds:
            feeds.add(src)
    return [op for dst, _, op in used if dst in feeds]


def spec_features(spec: ArchSpec) -> dict[str, float]:
    """The feature mapping of one spec (cached by spec id; treat the result as read-only)."""
    cached = _cache.get(spec.id)
    if cached is not None:
        return cached
    items = plan(spec)
    total = spec_cost(spec)
    f: dict[str, float] = {
        "total:macs": float(total.macs),
        "total:params": float(total.params),
        "total:bytes": float(total.bytes),
        "total:activation_bytes": float(total.activation_bytes),
        "total:ops": float(len(items)),
        "total:blocks": float(len(spec.blocks)),
        "total:stages": float(len(spec.stages)),
        "total:input_tokens": float(math.prod(spec.input.grid)),
    }

    def add(key: str, value: float) -> None:
        f[key] = f.get(key, 0.0) + value

    for item in items:
        c = op_costs(item)
        name = item.op.name if item.op is not None else "layer_scale"
        kind = f"{item.role.rstrip('12')}:{name}"
        add("total:traffic", c.traffic_bytes)
        add(f"count:{kind}", 1.0)
        add(f"macs:{kind}", float(c.macs))
        add(f"traffic:{kind}", c.traffic_bytes)
        add(f"bits:w{item.quant.weight_bits}a{item.quant.act_bits}:macs", float(c.macs))
        if item.stage >= 0:
            add(f"stage{item.stage}:macs", float(c.macs))
            add(f"stage{item.stage}:traffic", c.traffic_bytes)
        for token in _param_tokens(kind, item.params):
            add(f"param:{token}", 1.0)
        if name == "nb201_cell":
            for op in live_edge_ops(item.params["edges"]):
                add(f"live:{kind}:{op}", 1.0)
    for i, stage in enumerate(spec.stages):
        f[f"stage{i}:width"] = float(stage.width)
        f[f"stage{i}:depth"] = float(stage.depth)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.pop(next(iter(_cache)))
    _cache[spec.id] = f
    return f


class FeatureMap:
    """Fixed columns for feature mappings: ``log1p`` of every feature, plus the raw magnitudes of
    the additive ones (MACs, bytes, counts), which a linear model needs to add up op costs."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def fit(self, specs: Sequence[ArchSpec]) -> FeatureMap:
        names: set[str] = set()
        for spec in specs:
            names.update(spec_features(spec))
        self.names = sorted(names)
        self._index = {n: i for i, n in enumerate(self.names)}
        return self

    def transform(self, specs: Sequence[ArchSpec]) -> np.ndarray:
        """Columns: log1p(features), then raw features (same order)."""
        raw = np.zeros((len(specs), len(self.names)))
        for row, spec in enumerate(specs):
            for key, value in spec_features(spec).items():
                col = self._index.get(key)
                if col is not None:
                    raw[row, col] = value
        return np.hstack([np.log1p(np.maximum(raw, 0.0)), raw])

    def column(self, specs: Sequence[ArchSpec], name: str) -> np.ndarray:
        """One raw feature of every spec (0 where absent)."""
        return np.array([spec_features(s).get(name, 0.0) for s in specs])
