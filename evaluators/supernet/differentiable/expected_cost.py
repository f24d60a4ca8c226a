"""The exact expected cost of a spec under a factorised architecture distribution.

A spec's cost (latency from a lookup table, params, MACs) is a sum over its planned ops
(`search_space.plan`): ``cost(v) = const + sum_P c_P(v)``, one term per op *position* P (a
field path and role such as ``stages[1].blocks[0].token_mixer``; absent ops cost 0). Each
position depends on a few decisions only (its mixer's pattern dimensions, the stage width, the
stem's grid, the quantization policy, whether the stage and block exist), so

    E[cost] = const + sum_P sum_a  prod_{d in D_P, active in a} p_d(a_d) * c_P(a)

where ``a`` runs over the joint choices of the decisions ``D_P`` that P depends on. Only active
decisions are turned (an inactive one is summed out: its probabilities add to 1), which is the
enumeration order of `DecisionSpace.enumerate`. This is exact under the factorised distribution
and differentiable in the logits: a polynomial in the probabilities (`ExpectedCost.forward`).

Which decisions a position depends on is found by probing (`dependencies`): for random decision
vectors in which a decision is active, every other value of it is tried and the positions whose
op signature changes (or which appear or vanish) depend on it. The enumeration is then checked on
fresh random vectors (`ExpectedCost.check`): a dependency the probes missed would show as a
position whose enumerated signature differs from the real one, and raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from search_space.costs import op_cost
from search_space.declare.decisions import INACTIVE, DecisionSpace
from search_space.errors import SpaceError
from search_space.plan import PlannedOp, plan
from search_space.spec import ArchSpec

log = logging.getLogger(__name__)

PROBES = 24  # random vectors per decision in which it is active
CHECKS = 64  # random vectors the enumeration is checked on


class CostModel(Protocol):
    """Prices ops: ``cost(spec) = constant + sum of price(op) over the spec's planned ops``."""

    metric: str
    constant: float

    def price(self, ops: Sequence[tuple[PlannedOp, ArchSpec]]) -> np.ndarray:
        """The cost of each op (given with a spec it occurs in, for ops that must be timed)."""
        ...


class AnalyticCost:
    """``params`` or ``macs`` per op, as `search_space.costs.spec_cost` sums them."""

    def __init__(self, metric: str) -> None:
        if metric not in ("params", "macs"):
            raise SpaceError("penalty.metric", "analytic costs are params or macs", value=metric)
        self.metric, self.constant = metric, 0.0

    def price(self, ops: Sequence[tuple[PlannedOp, ArchSpec]]) -> np.ndarray:
        out = []
        for item, _ in ops:
            cost = op_cost(item)
            # MACs count every application of a repeated block, parameters once (`spec_cost`)
            out.append(cost.params if self.metric == "params" else cost.scaled(item.times).macs)
        return np.array(out, dtype=np.float64)


class TableLatency:
    """Latency from a `predictors.lut.LookupTablePredictor`: ``a * entry + b`` per op and ``c``
    per network, its correction ``(a, b, c)`` (the plain sum unless fitted or given). Ops the
    table lacks are profiled here and saved to it."""

    def __init__(self, predictor: object, correction: Sequence[float] | None = None) -> None:
        from predictors.lut import LookupTablePredictor

        if not isinstance(predictor, LookupTablePredictor):
            raise SpaceError("cost_table", "must be a LookupTablePredictor", value=predictor)
        self.predictor = predictor
        coef = np.asarray(predictor.coef if correction is None else correction, dtype=float)
        self.a, self.b, self.constant = float(coef[0]), float(coef[1]), float(coef[2])
        self.metric = f"latency_ms@{predictor.device}"

    def price(self, ops: Sequence[tuple[PlannedOp, ArchSpec]]) -> np.ndarray:
        from predictors.lut import profile_op

        table, pred = self.predictor.table, self.predictor
        missing: dict[str, tuple[PlannedOp, ArchSpec]] = {}
        for item, spec in ops:
            if item.signature() not in table:
                missing.setdefault(item.signature(), (item, spec))
        if missing and not pred.profile:
            raise SpaceError(
                "penalty.table",
                f"the table lacks {len(missing)} op signature(s) and profiling is off",
                value=next(iter(missing)),
            )
        for count, (sig, (item, spec)) in enumerate(sorted(missing.items()), 1):
            table.add(sig, profile_op(item, spec, pred.options, pred.torch_device))
            if count % 100 == 0:
                table.save()  # a killed profiling run keeps what it measured
                log.info("profiled %d of %d op signatures", count, len(missing))
        if missing:
            table.save()
        key = f"{pred.options.statistic}_ms"
        entries = [table.get(item.signature())[key] for item, _ in ops]
        return self.a * np.array(entries, dtype=np.float64) + self.b


def spec_cost_of(model: CostModel, spec: ArchSpec) -> float:
    """``model``'s cost of one spec: the constant plus its ops' prices."""
    items = plan(spec)
    return float(model.price([(i, spec) for i in items]).sum()) + model.constant


def _key(item: PlannedOp) -> str:
    return f"{item.path}|{item.role}"


def _outcome(space: DecisionSpace, values: np.ndarray) -> tuple[ArchSpec, dict[str, PlannedOp]]:
    spec = space.decode(values)
    return spec, {_key(item): item for item in plan(spec)}


def _active_draws(
    space: DecisionSpace, dim: int, rng: np.random.Generator, count: int, tries: int = 400
) -> list[np.ndarray]:
    """Up to ``count`` random vectors in which dimension ``dim`` is read by the decoder."""
    out = []
    for _ in range(tries):
        values = space.random_values(rng)
        if space.active_mask(values)[dim]:
            out.append(values)
            if len(out) == count:
                break
    return out


def dependencies(space: DecisionSpace, seed: int = 0, probes: int = PROBES) -> dict[str, set[int]]:
    """Position key -> indices of the dimensions its op (or its presence) depends on."""
    rng = np.random.default_rng(seed)
    deps: dict[str, set[int]] = {}
    for d, dim in enumerate(space.dims):
        for base in _active_draws(space, d, rng, probes):
            _, before = _outcome(space, base)
            for key in before:
                deps.setdefault(key, set())
            for w in range(dim.size):
                if w == base[d]:
                    continue
                trial = base.copy()
                trial[d] = w
                _, after = _outcome(space, trial)
                for key in before.keys() | after.keys():
                    deps.setdefault(key, set())
                    a, b = before.get(key), after.get(key)
                    if a is None or b is None or a.signature() != b.signature():
                        deps[key].add(d)
    return deps


@dataclass(frozen=True)
class Term:
    """One position: its dimensions, and per joint choice of them (-1: inactive) the op there."""

    key: str
    dims: tuple[int, ...]
    choices: np.ndarray  # (rows, len(dims))
    ops: list[tuple[PlannedOp, ArchSpec]]


def enumerate_term(space: DecisionSpace, key: str, dims: Sequence[int], base: np.ndarray) -> Term:
    """Every joint choice of the active ``dims`` (others held at ``base``) under which the
    position ``key`` holds an op, with that op; an odometer over the active dimensions only."""
    order = sorted(dims)
    values = base.copy()
    for d in order:
        values[d] = 0
    rows: list[list[int]] = []
    ops: list[tuple[PlannedOp, ArchSpec]] = []
    while True:
        active = space.active_mask(values)
        spec, items = _outcome(space, values)
        if key in items:
            rows.append([int(values[d]) if active[d] else INACTIVE for d in order])
            ops.append((items[key], spec))
        turn = next(
            (
                k
                for k in reversed(range(len(order)))
                if active[order[k]] and values[order[k]] + 1 < space.dims[order[k]].size
            ),
            None,
        )
        if turn is None:
            break
        values[order[turn]] += 1
        for d in order[turn + 1 :]:
            values[d] = 0
    choices = np.array(rows, dtype=np.int64).reshape(len(rows), len(order))
    return Term(key, tuple(order), choices, ops)


class ExpectedCost(nn.Module):
    """``E[cost]`` of ``space``'s specs under per-dimension probabilities; see the module doc.

    Args:
        space: the declared space.
        model: prices each op (`AnalyticCost`, `TableLatency`).
        seed: seeds the dependency probes and the check.
    """

    index: torch.Tensor  # (rows, columns): each row's entries of the flat probability vector
    prices: torch.Tensor  # (rows,) the op's cost under each row's choices

    def __init__(self, space: DecisionSpace, model: CostModel, *, seed: int = 0) -> None:
        super().__init__()
        self.space, self.model, self.metric = space, model, model.metric
        self.constant = float(model.constant)
        deps = dependencies(space, seed)
        base = space.random_values(np.random.default_rng(seed))
        self.terms = [enumerate_term(space, key, sorted(deps[key]), base) for key in sorted(deps)]
        prices = model.price([op for term in self.terms for op in term.ops])
        self.check(np.random.default_rng(seed + 1))
        # one flat vector holds every dimension's probabilities followed by a 1 (an inactive
        # dimension's factor); each row of the table indexes one entry per column
        sizes = [d.size for d in space.dims]
        offsets = np.concatenate([[0], np.cumsum([n + 1 for n in sizes])])
        one = int(offsets[-1])  # an extra 1 pads rows of terms with fewer dimensions
        width = max((len(t.dims) for t in self.terms), default=0)
        index = np.full((sum(len(t.ops) for t in self.terms), max(width, 1)), one, np.int64)
        row = 0
        for term in self.terms:
            n = len(term.ops)
            for k, d in enumerate(term.dims):
                col = term.choices[:, k]
                index[row : row + n, k] = offsets[d] + np.where(col < 0, sizes[d], col)
            row += n
        self.register_buffer("index", torch.from_numpy(index))
        self.register_buffer("prices", torch.from_numpy(prices).double())
        self.rows = row
        self.signatures = len({item.signature() for t in self.terms for item, _ in t.ops})

    def check(self, rng: np.random.Generator, count: int = CHECKS) -> None:
        """Raises `SpaceError` if a random spec's op at some position is not the one its
        decisions select in the enumeration (a dependency the probes missed)."""
        lookup = {
            t.key: {
                tuple(r): item.signature() for r, (item, _) in zip(t.choices, t.ops, strict=True)
            }
            for t in self.terms
        }
        dims = {t.key: t.dims for t in self.terms}
        for _ in range(count):
            values = self.space.random_values(rng)
            active = self.space.active_mask(values)
            _, items = _outcome(self.space, values)
            for key, item in items.items():
                row = tuple(int(values[d]) if active[d] else INACTIVE for d in dims.get(key, ()))
                if lookup.get(key, {}).get(row) != item.signature():
                    raise SpaceError(
                        "space",
                        f"the expected cost's enumeration of {key} misses a decision it depends "
                        "on (raise PROBES)",
                    )

    def forward(self, probabilities: Sequence[torch.Tensor]) -> torch.Tensor:
        """The expected cost under ``probabilities`` (one vector per dimension)."""
        # float64: a sum of ~1e4 products must match the brute-force expectation exactly; on the
        # index's device (a one-hot or uniform vector made on the CPU may price a CUDA table)
        device = self.index.device
        parts = [
            torch.cat([p.to(device).double(), p.new_ones(1, dtype=torch.float64, device=device)])
            for p in probabilities
        ]
        flat = torch.cat([*parts, parts[0].new_ones(1)])
        weights = flat[self.index].prod(dim=1)
        return self.constant + (weights * self.prices).sum()

    def of_spec(self, spec: ArchSpec) -> float:
        """The cost of one spec: the expectation at its one-hot distribution."""
        values = self.space.encode(spec)
        probs = []
        for dim, v in zip(self.space.dims, values, strict=True):
            p = torch.zeros(dim.size)
            p[0 if v == INACTIVE else int(v)] = 1.0
            probs.append(p)
        return float(self.forward(probs))


def uniform(space: DecisionSpace) -> list[torch.Tensor]:
    return [torch.full((d.size,), 1.0 / d.size) for d in space.dims]


def summary(cost: ExpectedCost) -> dict[str, float]:
    return {
        "positions": float(len(cost.terms)),
        "rows": float(cost.rows),
        "signatures": float(cost.signatures),
        "max_dims": float(max((len(t.dims) for t in cost.terms), default=0)),
    }
