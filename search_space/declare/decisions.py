"""`DecisionSpace`: fixed-length conditional decisions that decode to specs.

The operations every space shares live here: sampling under constraints, encoding, membership,
mutation, crossover, neighbours and brute-force enumeration. A subclass defines its dimensions
(`_add` in its constructor, ordered so that whether a dimension is active depends only on earlier
ones), `_decode` and `_encode_into`, and `cardinality`. `SearchSpace` (declared spaces) and the
NAS-Bench-201 space are such subclasses, so strategies treat them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from search_space.costs import spec_cost
from search_space.declare.schema import Constraint
from search_space.errors import InfeasibleError, SpaceError
from search_space.spec import ArchSpec, Op

INACTIVE = -1
ENCODE_CACHE = 4096
MetricFn = Callable[[ArchSpec], float]
SeedLike = int | np.random.Generator | None


def as_rng(seed: SeedLike) -> np.random.Generator:
    """A numpy Generator from a seed or an existing Generator (never the global RNG)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@dataclass(frozen=True)
class Dim:
    """One decision: a label, its choices, and whether neighbouring choices are ordered."""

    name: str
    choices: tuple[Any, ...]
    ordinal: bool = False

    @property
    def size(self) -> int:
        return len(self.choices)


class DecisionSpace:
    """Base of every space: labelled dimensions and the operations on decision vectors."""

    def __init__(
        self, *, source: str | None = None, constraints: tuple[Constraint, ...] = ()
    ) -> None:
        self.source = source
        self.constraints = constraints
        self.dims: list[Dim] = []
        self._index: dict[str, int] = {}
        self._draw_weights: list[np.ndarray | None] = []
        self._draw_cdfs: list[np.ndarray | None] = []
        self._encodings: dict[str, np.ndarray] = {}  # spec id -> decisions, oldest first

    def _add(self, name: str, choices: tuple[Any, ...] | list[Any], ordinal: bool = False) -> None:
        self._index[name] = len(self.dims)
        self.dims.append(Dim(name, tuple(choices), ordinal))
        weights = _type_balanced(tuple(choices))
        self._draw_weights.append(weights)
        self._draw_cdfs.append(None if weights is None else _cdf(weights))

    def _decode(self, values: np.ndarray | list[int], active: list[bool] | None = None) -> ArchSpec:
        """The spec of ``values``; marks each dimension it reads in ``active``."""
        raise NotImplementedError

    def _encode_into(self, spec: ArchSpec, values: np.ndarray) -> None:
        """Writes the canonical decisions of ``spec``; raises `SpaceError` if not in the space."""
        raise NotImplementedError

    def cardinality(self) -> int:
        """Exact number of distinct specs (ignoring constraints)."""
        raise NotImplementedError

    def _pick(self, values: np.ndarray | list[int], active: list[bool] | None, name: str) -> Any:
        """The choice of dimension ``name`` in ``values``, recording that it was read."""
        i = self._index[name]
        if active is not None:
            active[i] = True
        v = int(values[i])
        if not 0 <= v < self.dims[i].size:
            raise SpaceError(name, f"index out of range 0..{self.dims[i].size - 1}", value=v)
        return self.dims[i].choices[v]

    def decode(self, values: np.ndarray | list[int]) -> ArchSpec:
        """The spec of a decision vector (inactive entries are ignored)."""
        if len(values) != len(self.dims):
            raise SpaceError("encoding", f"must have length {len(self.dims)}", value=len(values))
        return self._decode(values)

    def active_mask(self, values: np.ndarray | list[int]) -> list[bool]:
        active = [False] * len(self.dims)
        self._decode(values, active)
        return active

    def encode(self, spec: ArchSpec) -> np.ndarray:
        """The canonical decision vector of ``spec`` (-1 where inactive); raises if not in space."""
        cached = self._encodings.get(spec.id)
        if cached is not None:
            return cached.copy()
        values = np.full(len(self.dims), INACTIVE, dtype=np.int64)
        self._encode_into(spec, values)
        if self._decode(values) != spec:  # pragma: no cover - guards the two directions agreeing
            raise SpaceError("spec", "encoding does not reproduce the spec")
        # search revisits the same specs (parents, archive members) many times
        if len(self._encodings) >= ENCODE_CACHE:
            self._encodings.pop(next(iter(self._encodings)))
        self._encodings[spec.id] = values
        return values.copy()

    def _set(self, values: np.ndarray, name: str, choice: Any) -> None:
        i = self._index[name]
        try:
            values[i] = self.dims[i].choices.index(choice)
        except ValueError:
            shown = choice.label() if isinstance(choice, Op) else choice
            raise SpaceError(name, "value not among the space's choices", value=shown) from None

    def one_hot(self, spec: ArchSpec) -> np.ndarray:
        """A fixed-length 0/1 feature vector (one block of one-hots per dimension)."""
        values = self.encode(spec)
        out = np.zeros(sum(d.size for d in self.dims), dtype=np.float32)
        offset = 0
        for dim, v in zip(self.dims, values, strict=True):
            if v != INACTIVE:
                out[offset + v] = 1.0
            offset += dim.size
        return out

    # -- membership and constraints ------------------------------------------------------------
    def contains(self, spec: ArchSpec, *, check_constraints: bool = True) -> bool:
        """True if ``spec`` is a point of this space (and meets its analytic constraints)."""
        try:
            self.encode(spec)
        except SpaceError:
            return False
        return not check_constraints or not self.violations(spec)

    def violations(
        self, spec: ArchSpec, metrics: Mapping[str, MetricFn] | None = None
    ) -> list[str]:
        """The constraints ``spec`` breaks, as readable lines. Non-analytic constraints need a
        function in ``metrics`` (e.g. a latency predictor); unresolved ones raise `SpaceError`."""
        cost = spec_cost(spec).to_dict() if any(c.analytic for c in self.constraints) else {}
        broken = []
        for c in self.constraints:
            if c.analytic:
                value = float(cost[c.metric])
            elif metrics and c.metric in metrics:
                value = float(metrics[c.metric](spec))
            else:
                raise SpaceError(
                    f"constraints.{c.metric}",
                    "needs a predictor for this metric; "
                    "pass metrics={name: function} or drop the constraint",
                )
            if not c.holds(value):
                broken.append(f"{c.describe()} (got {value:g})")
        return broken

    # -- sampling and variation ----------------------------------------------------------------
    def random_values(self, rng: np.random.Generator) -> np.ndarray:
        """One uniform draw per dimension; op dimensions draw the op type first, then its
        variant, so a mixer with many parameter variants is not favoured over one with few."""
        # `rng.choice(size, p=weights)` draws one uniform and looks it up in the weights' CDF;
        # doing that lookup here on a CDF computed once gives the same draws, without
        # choice's per-call checks of the weights (the sampler's hot spot in long runs)
        return np.array(
            [
                int(cdf.searchsorted(rng.random(), side="right"))
                if cdf is not None
                else rng.integers(d.size)
                for d, cdf in zip(self.dims, self._draw_cdfs, strict=True)
            ],
            dtype=np.int64,
        )

    def sample(
        self,
        seed: SeedLike = None,
        *,
        max_tries: int = 1000,
        metrics: Mapping[str, MetricFn] | None = None,
    ) -> ArchSpec:
        """A random spec meeting the constraints, found in at most ``max_tries`` draws.

        Each active dimension is drawn uniformly. Raises `InfeasibleError` naming the constraints
        when no draw satisfies them.
        """
        rng = as_rng(seed)
        return self._feasible(lambda: self.decode(self.random_values(rng)), max_tries, metrics)

    def _feasible(
        self, draw: Callable[[], ArchSpec], max_tries: int, metrics: Mapping[str, MetricFn] | None
    ) -> ArchSpec:
        last: list[str] = []
        for _ in range(max_tries):
            spec = draw()
            last = self.violations(spec, metrics) if self.constraints else []
            if not last:
                return spec
        where = f"{self.source}: " if self.source else ""
        raise InfeasibleError(
            f"{where}constraints: no architecture found in {max_tries} tries "
            f"that meets {', '.join(c.describe() for c in self.constraints)}; "
            f"last try broke {'; '.join(last)}"
        )

    def _filled(self, spec: ArchSpec, rng: np.random.Generator) -> np.ndarray:
        values = self.encode(spec)
        fill = self.random_values(rng)
        return np.where(values == INACTIVE, fill, values)

    def mutate(
        self,
        spec: ArchSpec,
        seed: SeedLike = None,
        *,
        max_tries: int = 100,
        metrics: Mapping[str, MetricFn] | None = None,
    ) -> ArchSpec:
        """A different spec of the space that changes one active decision of ``spec``."""
        rng = as_rng(seed)

        def draw() -> ArchSpec:
            for _ in range(max_tries):
                values = self._filled(spec, rng)
                active = [
                    i for i, a in enumerate(self.active_mask(values)) if a and self.dims[i].size > 1
                ]
                if not active:
                    raise InfeasibleError("the space has a single point; nothing to mutate")
                i = int(rng.choice(active))
                values[i] = (values[i] + rng.integers(1, self.dims[i].size)) % self.dims[i].size
                child = self.decode(values)
                if child != spec:
                    return child
            raise InfeasibleError(f"no distinct mutation found in {max_tries} tries")

        return self._feasible(draw, max_tries, metrics)

    def crossover(
        self,
        a: ArchSpec,
        b: ArchSpec,
        seed: SeedLike = None,
        *,
        max_tries: int = 100,
        metrics: Mapping[str, MetricFn] | None = None,
    ) -> ArchSpec:
        """A child taking each stage's decisions (and each global one) from either parent."""
        rng = as_rng(seed)

        def group(name: str) -> str:
            return name.split(".", 1)[0]

        groups = sorted({group(d.name) for d in self.dims})

        def draw() -> ArchSpec:
            va, vb = self._filled(a, rng), self._filled(b, rng)
            take_a = {g: bool(rng.integers(2)) for g in groups}
            child = [va[i] if take_a[group(d.name)] else vb[i] for i, d in enumerate(self.dims)]
            return self.decode(child)

        return self._feasible(draw, max_tries, metrics)

    def neighbours(self, spec: ArchSpec) -> list[ArchSpec]:
        """Specs that differ from ``spec`` in one active decision (ordinal: one step)."""
        values = self.encode(spec)
        out: dict[str, ArchSpec] = {}
        for i, active in enumerate(self.active_mask(np.where(values < 0, 0, values))):
            if not active:
                continue
            dim, v = self.dims[i], int(values[i])
            options = [v - 1, v + 1] if dim.ordinal else range(dim.size)
            for w in options:
                if 0 <= w < dim.size and w != v:
                    trial = values.copy()
                    trial[i] = w
                    trial = np.where(trial < 0, 0, trial)
                    child = self.decode(trial)
                    if child != spec:
                        out.setdefault(child.id, child)
        return list(out.values())

    def enumerate(self, limit: int = 1_000_000) -> Iterator[ArchSpec]:
        """Every distinct spec, by brute force over the active decisions (small spaces only).

        Dimensions are ordered so that whether one is active depends only on earlier ones, so an
        odometer that only turns active dimensions (resetting later ones to 0) visits every
        assignment of active decisions exactly once.
        """
        seen: set[str] = set()
        values = [0] * len(self.dims)
        for _ in range(limit):
            active = [False] * len(self.dims)
            spec = self._decode(values, active)
            if spec.id not in seen:
                seen.add(spec.id)
                yield spec
            turn = next(
                (
                    i
                    for i in reversed(range(len(self.dims)))
                    if active[i] and values[i] + 1 < self.dims[i].size
                ),
                None,
            )
            if turn is None:
                return
            values[turn] += 1
            values[turn + 1 :] = [0] * (len(self.dims) - turn - 1)
        raise SpaceError("space", "more decision vectors than the enumeration limit", value=limit)


def _type_balanced(choices: tuple[Any, ...]) -> np.ndarray | None:
    """Draw probabilities giving each op name equal mass, split evenly among its variants."""
    if len(choices) < 2 or not all(isinstance(c, Op) for c in choices):
        return None
    counts: dict[str, int] = {}
    for c in choices:
        counts[c.name] = counts.get(c.name, 0) + 1
    if len(set(counts.values())) == 1:
        return None
    weights = np.array([1.0 / (len(counts) * counts[c.name]) for c in choices])
    return weights / weights.sum()


def _cdf(weights: np.ndarray) -> np.ndarray:
    """The cumulative weights exactly as `numpy.random.Generator.choice` computes them."""
    cdf = weights.cumsum()
    cdf /= cdf[-1]
    return cdf
