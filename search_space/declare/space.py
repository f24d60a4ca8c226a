"""`SearchSpace`: a declared space as fixed-length conditional decisions over concrete choices.

A space is a list of labelled dimensions (`Dim`), each a finite list of choices. A decision vector
holds one index per dimension; some dimensions are active only under others (a stage's blocks only
when the stage exists, a pattern's k only when that pattern is chosen), and any vector of in-range
indices decodes to a valid spec, because the declaration was checked for every combination when it
was loaded. That makes sampling, mutation and crossover closed over the space by construction.

The numeric encoding of a spec is its canonical decision vector with -1 for inactive dimensions;
`decode(encode(spec)) == spec` for every spec in the space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from search_space.costs import spec_cost
from search_space.declare.patterns import Pattern, count_sequences
from search_space.declare.schema import Constraint, SpaceDecl, parse_space
from search_space.errors import InfeasibleError, SpaceError
from search_space.spec import ArchSpec, Block, Op, Stage

INACTIVE = -1
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


class SearchSpace:
    """A declared space of architectures; see the module docstring for the decision model.

    Build one with `load_space(path)` or `SearchSpace.from_dict(data)`.
    """

    def __init__(self, decl: SpaceDecl, *, source: str | None = None) -> None:
        self.decl = decl
        self.source = source
        self.constraints: tuple[Constraint, ...] = decl.constraints
        self.dims: list[Dim] = []
        self._index: dict[str, int] = {}
        self._build_dims()
        self._draw_weights = [_type_balanced(d.choices) for d in self.dims]

    # -- construction ---------------------------------------------------------------------------
    @staticmethod
    def from_dict(data: Mapping[str, Any], *, source: str | None = None) -> SearchSpace:
        try:
            return SearchSpace(parse_space(data), source=source)
        except SpaceError as err:
            if source:
                raise err.with_source(source) from None
            raise

    def _add(self, name: str, choices: tuple[Any, ...] | list[Any], ordinal: bool = False) -> None:
        self._index[name] = len(self.dims)
        self.dims.append(Dim(name, tuple(choices), ordinal))

    def _build_dims(self) -> None:
        d = self.decl
        self._add("stem", d.stems)
        self._add("num_stages", d.num_stages, ordinal=True)
        for s, st in enumerate(d.stages):
            p = f"stages[{s}]"
            self._add(f"{p}.depth", st.depths, ordinal=True)
            self._add(f"{p}.width", st.widths, ordinal=True)
            self._add(f"{p}.downsample", st.downsamples)
            self._add(f"{p}.norm", st.norms)
            self._add(f"{p}.channel_mixer", st.channel_mixers)
            self._add(f"{p}.pattern", st.patterns)
            for k, pat in enumerate(st.patterns):
                q = f"{p}.patterns[{k}]"
                if pat.kind == "free":
                    for j in range(st.max_depth):
                        self._add(f"{q}.blocks[{j}]", [st.mixers[i] for i in pat.base])
                    continue
                if pat.values:
                    self._add(f"{q}.{pat.kind}", pat.values, ordinal=True)
                self._add(f"{q}.mixer", [st.mixers[i] for i in pat.base])
                if pat.kind != "uniform":
                    self._add(f"{q}.other", [st.mixers[i] for i in pat.other])
            if d.quant_scope == "per_stage":
                self._add(f"{p}.quant", d.quants)
            else:
                for j in range(st.max_depth):
                    self._add(f"{p}.blocks[{j}].quant", d.quants)
        self._add("head", d.heads)
        self._add("layer_scale", d.layer_scales)

    # -- decoding -------------------------------------------------------------------------------
    def _decode(self, values: np.ndarray | list[int], active: list[bool] | None = None) -> ArchSpec:
        def pick(name: str) -> Any:
            i = self._index[name]
            if active is not None:
                active[i] = True
            v = int(values[i])
            if not 0 <= v < self.dims[i].size:
                raise SpaceError(name, f"index out of range 0..{self.dims[i].size - 1}", value=v)
            return self.dims[i].choices[v]

        d = self.decl
        stem = pick("stem")
        n = pick("num_stages")
        ls = pick("layer_scale")
        stages = []
        for s in range(n):
            st, p = d.stages[s], f"stages[{s}]"
            depth = pick(f"{p}.depth")
            width = pick(f"{p}.width")
            downsample = pick(f"{p}.downsample")
            norm = pick(f"{p}.norm")
            channel = pick(f"{p}.channel_mixer")
            pat: Pattern = pick(f"{p}.pattern")
            q = f"{p}.patterns[{st.patterns.index(pat)}]"
            if pat.kind == "free":
                mixers = [pick(f"{q}.blocks[{j}]") for j in range(depth)]
            else:
                value = pick(f"{q}.{pat.kind}") if pat.values else 0
                x = pick(f"{q}.mixer")
                y = pick(f"{q}.other") if pat.kind != "uniform" else x
                mixers = [y if m else x for m in pat.mask(value, depth)]
            if d.quant_scope == "per_stage":
                quant = pick(f"{p}.quant")
                quants = [quant] * depth
            else:
                quants = [pick(f"{p}.blocks[{j}].quant") for j in range(depth)]
            blocks = tuple(
                Block(m, channel, norm, ls, qu) for m, qu in zip(mixers, quants, strict=True)
            )
            stages.append(Stage(width, downsample, blocks))
        return ArchSpec(
            input=d.input,
            stem=stem,
            stages=tuple(stages),
            head=pick("head"),
            boundary_quant=d.boundary_quant,
        )

    def decode(self, values: np.ndarray | list[int]) -> ArchSpec:
        """The spec of a decision vector (inactive entries are ignored)."""
        if len(values) != len(self.dims):
            raise SpaceError("encoding", f"must have length {len(self.dims)}", value=len(values))
        return self._decode(values)

    def active_mask(self, values: np.ndarray | list[int]) -> list[bool]:
        active = [False] * len(self.dims)
        self._decode(values, active)
        return active

    # -- encoding -------------------------------------------------------------------------------
    def encode(self, spec: ArchSpec) -> np.ndarray:
        """The canonical decision vector of ``spec`` (-1 where inactive); raises if not in space."""
        values = np.full(len(self.dims), INACTIVE, dtype=np.int64)
        self._encode_into(spec, values)
        if self._decode(values) != spec:  # pragma: no cover - guards the two directions agreeing
            raise SpaceError("spec", "encoding does not reproduce the spec")
        return values

    def _set(self, values: np.ndarray, name: str, choice: Any) -> None:
        i = self._index[name]
        try:
            values[i] = self.dims[i].choices.index(choice)
        except ValueError:
            shown = choice.label() if isinstance(choice, Op) else choice
            raise SpaceError(name, "value not among the space's choices", value=shown) from None

    def _encode_into(self, spec: ArchSpec, values: np.ndarray) -> None:
        d = self.decl
        if spec.input != d.input:
            raise SpaceError("input", "differs from the space's input", value=spec.input.to_dict())
        if spec.boundary_quant != d.boundary_quant:
            raise SpaceError("boundary_quant", "differs from the space's boundary policy")
        self._set(values, "stem", spec.stem)
        self._set(values, "num_stages", len(spec.stages))
        self._set(values, "head", spec.head)
        scales = {b.layer_scale for b in spec.blocks}
        if len(scales) != 1:
            raise SpaceError("layer_scale", "the space uses one layer scale for all blocks")
        self._set(values, "layer_scale", scales.pop())
        for s, stage in enumerate(spec.stages):
            self._encode_stage(s, stage, values)

    def _encode_stage(self, s: int, stage: Stage, values: np.ndarray) -> None:
        st, p = self.decl.stages[s], f"stages[{s}]"
        blocks = stage.blocks
        self._set(values, f"{p}.depth", len(blocks))
        self._set(values, f"{p}.width", stage.width)
        self._set(values, f"{p}.downsample", stage.downsample)
        for attr, dim in (("norm", "norm"), ("channel_mixer", "channel_mixer")):
            seen = {getattr(b, attr) for b in blocks}
            if len(seen) != 1:
                raise SpaceError(f"{p}.{dim}", "the space uses one per stage")
            self._set(values, f"{p}.{dim}", seen.pop())
        if self.decl.quant_scope == "per_stage":
            quants = {b.quant for b in blocks}
            if len(quants) != 1:
                raise SpaceError(f"{p}.quant", "the space uses one quantization policy per stage")
            self._set(values, f"{p}.quant", quants.pop())
        else:
            for j, b in enumerate(blocks):
                self._set(values, f"{p}.blocks[{j}].quant", b.quant)
        try:
            seq = [st.mixers.index(b.token_mixer) for b in blocks]
        except ValueError:
            raise SpaceError(
                f"{p}.token_mixers", "a block's token mixer is not among the stage's choices"
            ) from None
        for k, pat in enumerate(st.patterns):
            q = f"{p}.patterns[{k}]"
            if pat.kind == "free":
                if all(i in pat.base for i in seq):
                    self._set(values, f"{p}.pattern", pat)
                    for j, i in enumerate(seq):
                        self._set(values, f"{q}.blocks[{j}]", st.mixers[i])
                    return
                continue
            found = pat.match(seq)
            if found is None:
                continue
            vi, x, y = found
            self._set(values, f"{p}.pattern", pat)
            if pat.values:
                values[self._index[f"{q}.{pat.kind}"]] = vi
            self._set(values, f"{q}.mixer", st.mixers[x])
            if pat.kind != "uniform":
                self._set(values, f"{q}.other", st.mixers[y])
            return
        raise SpaceError(
            f"{p}.patterns",
            "the stage's mixer sequence matches none of its patterns",
            value=[st.mixers[i].name for i in seq],
        )

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
        return np.array(
            [
                rng.choice(d.size, p=p) if p is not None else rng.integers(d.size)
                for d, p in zip(self.dims, self._draw_weights, strict=True)
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

    # -- size -----------------------------------------------------------------------------------
    def cardinality(self) -> int:
        """Exact number of distinct specs (ignoring constraints), as a Python integer."""
        d = self.decl
        per_block_quant = d.quant_scope == "per_block"
        stage_counts = []
        for st in d.stages:
            total = 0
            for depth in st.depths:
                seqs = count_sequences(st.patterns, depth)
                quant = len(d.quants) ** depth if per_block_quant else len(d.quants)
                total += seqs * quant
            total *= len(st.widths) * len(st.downsamples) * len(st.norms) * len(st.channel_mixers)
            stage_counts.append(total)
        structures = sum(math.prod(stage_counts[:n]) for n in d.num_stages)
        return len(d.stems) * len(d.heads) * len(d.layer_scales) * structures

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

    # -- description ----------------------------------------------------------------------------
    def mixer_names(self) -> list[str]:
        names = [m.name for st in self.decl.stages for m in st.mixers]
        return list(dict.fromkeys(names))

    def quant_bits(self) -> list[int]:
        bits = {q.weight_bits for q in self.decl.quants} | {q.act_bits for q in self.decl.quants}
        return sorted(bits)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: dimensions, mixers, quantization choices, cardinality."""
        d = self.decl
        return {
            "name": d.name,
            "description": d.description,
            "source": self.source,
            "input": d.input.to_dict(),
            "cardinality": self.cardinality(),
            "num_dims": len(self.dims),
            "mixers": self.mixer_names(),
            "channel_mixers": list(
                dict.fromkeys(m.name for st in d.stages for m in st.channel_mixers)
            ),
            "quant_bits": self.quant_bits(),
            "quant_scope": d.quant_scope,
            "num_stages": list(d.num_stages),
            "stages": [
                {
                    "depth": list(st.depths),
                    "width": list(st.widths),
                    "downsample": [o.label() for o in st.downsamples],
                    "norms": list(st.norms),
                    "token_mixers": [m.label() for m in st.mixers],
                    "channel_mixers": [m.label() for m in st.channel_mixers],
                    "patterns": [_pattern_label(p) for p in st.patterns],
                }
                for st in d.stages
            ],
            "constraints": [c.describe() for c in self.constraints],
            "dims": [{"name": dim.name, "size": dim.size} for dim in self.dims],
        }


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


def _pattern_label(p: Pattern) -> str:
    return p.kind if not p.values else f"{p.kind}{list(p.values)}"
