"""Specs of a declared space that together touch every shared tensor at its largest shape.

The supernet sizes each shared tensor as the element-wise maximum, over the space, of the
parameter shapes that use it. Building every spec is impossible; these covering specs suffice.
A slot's shape grows with the widths and the elastic parameters, and otherwise depends only on
what its key names (the op's non-elastic parameters, the grid or width where its rule is keyed by
them), on whether a downsampler changes the width (a projection exists only then) and on
whether there are prefix tokens. So the candidates, in order:

1. per number of stages, the first stem and downsamplers at the largest widths, with a rotation
   of each stage's token mixers, channel mixers and norms over its deepest block positions, so
   that each (block, op variant) pair appears (the covering of earlier versions, kept first so
   that the initial weights of a space are unchanged);
2. every stem, downsampler and head at the largest widths;
3. one path of stem and downsamplers per distinct sequence of token grids (and of grid-keyed
   downsamplers), with a rotation of the grid-keyed ops;
4. per stage, the largest pair (previous width, width) of each kind (narrowing, equal,
   widening), for the downsamplers whose weights exist only when the width changes;
5. for ops keyed by width, every width of a stage (every pair with the previous stage, or a skip's
   source, for width-keyed downsamplers and skips), with a rotation of the width-keyed ops.

A candidate is kept only when it has an op the kept ones do not (`_identity`), so most are only
planned (microseconds), not built. Also the largest and smallest specs of a space by parameter
count, used by the sandwich rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluators.supernet.rules import GRID, WIDTH, Sharing
from evaluators.supernet.slots import op_key, place_of, rule_for
from search_space.costs import spec_cost
from search_space.declare.schema import SpaceDecl, StageDecl
from search_space.declare.space import SearchSpace
from search_space.errors import SpaceError
from search_space.ops import REGISTRIES, OpContext, OpDef
from search_space.ops.stems import prefix_tokens
from search_space.plan import PlannedOp, plan
from search_space.spec import ArchSpec, Block, Op, Stage
from search_space.structure import LATENT_READ, LATENT_TOKENS, LATENT_WRITE, NESTED_MLP, SKIP_MERGE


def check_space(space: SearchSpace, *, strict: bool) -> None:
    """Raises `SpaceError` (strict only) for an op of the space that declares no sharing rule.

    Structured stages (fixed blocks, skips, latent tokens, repeated, shared, channel-sliced and
    nested blocks) are supported: see docs/supernet.md."""
    for kind, ref in declared_ops(space.decl):
        op = REGISTRIES[kind].get(ref.name)
        rule_for(op, op.complete(ref.kwargs, kind), strict=strict)


def declared_ops(d: SpaceDecl) -> list[tuple[str, Op]]:
    """(registry kind, op) of every op the declaration can use."""
    ops = [("stem", o) for o in d.stems] + [("head", o) for o in d.heads]
    for st in d.stages:
        ops += [("downsample", o) for o in st.downsamples]
        ops += [("token_mixer", o) for o in st.mixers]
        ops += [("channel_mixer", o) for o in st.channel_mixers]
        ops += [("norm", Op(n)) for n in st.norms]
    return ops


@dataclass(frozen=True)
class _Path:
    """The choices that set the token grids: number of stages, stem, each stage's downsampler."""

    stages: int
    stem: Op
    downs: tuple[Op, ...]


# a stage's (token mixers, channel mixers, norms) to rotate over in one phase
Pick = Callable[[StageDecl], tuple[Sequence[Op], Sequence[Op], Sequence[str]]]


def covering_specs(space: SearchSpace) -> Iterator[ArchSpec]:
    """Specs that reach every shared tensor at its largest shape (see the module docstring)."""
    seen: set[tuple[Any, ...]] = set()
    for spec in _candidates(space.decl):
        try:
            items = plan(spec)
        except SpaceError:  # a combination the space never produces
            continue
        ids = {_identity(item) for item in items if item.op is not None}
        if not ids <= seen:
            seen |= ids
            yield spec


def _rule(op: OpDef, params: dict[str, Any]) -> Sharing:
    return rule_for(op, params, strict=False)


def _identity(item: PlannedOp) -> tuple[Any, ...]:
    """What fixes the shapes of a planned op's weights, up to growing with the width and the
    elastic parameters: its slot (place and op key), its parameters, whether there are prefix
    tokens, and for a downsampler both widths (a projection exists only when they differ)."""
    assert item.op is not None
    key = f"{place_of(item)}.{op_key(item, _rule(item.op, item.params))}"
    ctx = item.ctx
    widths = (ctx.dim, ctx.out_dim) if item.role == "downsample" else ()
    params = tuple(sorted((k, repr(v)) for k, v in item.params.items()))
    return key, params, widths, ctx.prefix > 0, ctx.num_classes


def _keyed(kind: str, op: Op, by: str) -> bool:
    opdef = REGISTRIES[kind].get(op.name)
    return by in _rule(opdef, opdef.complete(op.kwargs, kind)).keyed_by


def _picker(by: str | None) -> Pick:
    """All of a stage's ops (``by`` None), or those keyed by ``by`` (the first one when none is:
    the others are at their largest in the other phases)."""

    def pick(st: StageDecl) -> tuple[Sequence[Op], Sequence[Op], Sequence[str]]:
        if by is None:
            return st.mixers, st.channel_mixers, st.norms
        mixers = [m for m in st.mixers if _keyed("token_mixer", m, by)] or st.mixers[:1]
        channel = [c for c in st.channel_mixers if _keyed("channel_mixer", c, by)]
        return mixers, channel or st.channel_mixers[:1], st.norms[:1]

    return pick


def _rotations(stages: Sequence[StageDecl], pick: Pick) -> int:
    return max(max(len(part) for part in pick(st)) if st.fixed is None else 1 for st in stages)


def _spec(d: SpaceDecl, path: _Path, widths: Sequence[int], k: int, pick: Pick) -> ArchSpec:
    layer_scale = next((v for v in d.layer_scales if v is not None), None)
    built = []
    for st, width, down in zip(d.stages[: path.stages], widths, path.downs, strict=True):
        if st.fixed is not None:
            blocks = st.fixed
        else:
            mixers, channel, norms = pick(st)
            repeat = max(st.repeats) if st.repeats else 1
            blocks = tuple(
                Block(
                    mixers[(k + j) % len(mixers)],
                    channel[(k + j) % len(channel)],
                    norms[(k + j) % len(norms)],
                    layer_scale,
                    repeat=repeat,
                    nested_ratio=st.nested_ratio,
                )
                for j in range(st.max_depth)
            )
        built.append(Stage(width, down, blocks, skip=st.skip, latents=st.latents))
    return ArchSpec(d.input, path.stem, tuple(built), d.heads[k % len(d.heads)])


def _largest(stages: Sequence[StageDecl]) -> tuple[int, ...]:
    return tuple(max(st.widths) for st in stages)


def _candidates(d: SpaceDecl) -> Iterator[ArchSpec]:
    every = _picker(None)
    # 1. the first path of each number of stages, every op variant at every block position
    for n in d.num_stages:
        stages = d.stages[:n]
        first = _Path(n, d.stems[0], tuple(st.downsamples[0] for st in stages))
        for k in range(_rotations(stages, every)):
            yield _spec(d, first, _largest(stages), k, every)
    # 2. every stem, downsampler and head
    for n in d.num_stages:
        stages = d.stages[:n]
        count = max(len(d.stems), len(d.heads), *(len(st.downsamples) for st in stages))
        for k in range(count):
            downs = tuple(st.downsamples[k % len(st.downsamples)] for st in stages)
            path = _Path(n, d.stems[k % len(d.stems)], downs)
            yield _spec(d, path, _largest(stages), k, every)
    paths = _distinct_paths(d)
    # 3. every sequence of grids, with the grid-keyed ops
    by_grid = _picker(GRID)
    for path in paths:
        stages = d.stages[: path.stages]
        for k in range(_rotations(stages, by_grid)):
            yield _spec(d, path, _largest(stages), k, by_grid)
    # 4. the largest narrowing, equal and widening pair of each stage, for every downsampler
    for path in paths:
        stages = d.stages[: path.stages]
        for widths in _extreme_pairs(stages):
            for k in range(max(len(st.downsamples) for st in stages)):
                downs = tuple(st.downsamples[k % len(st.downsamples)] for st in stages)
                yield _spec(d, _Path(path.stages, path.stem, downs), widths, 0, every)
    # 5. every width of each stage (every pair, for width-keyed downsamplers and skips), with the
    # width-keyed ops
    if _any_keyed(d, WIDTH):
        pairs = _any_keyed(d, WIDTH, kinds=("downsample",)) or any(st.skip for st in d.stages)
        by_width = _picker(WIDTH)
        firsts: dict[int, _Path] = {}
        for path in paths:
            firsts.setdefault(path.stages, path)
        for path in paths if _any_keyed(d, WIDTH, also=GRID) else list(firsts.values()):
            stages = d.stages[: path.stages]
            rounds = _rotations(stages, by_width)
            if pairs:
                rounds = max(rounds, *(len(st.downsamples) for st in stages))
            for widths in _width_sets(stages, pairs=pairs):
                for k in range(rounds):
                    downs = path.downs
                    if pairs:
                        downs = tuple(st.downsamples[k % len(st.downsamples)] for st in stages)
                    yield _spec(d, _Path(path.stages, path.stem, downs), widths, k, by_width)


def _width_sets(stages: Sequence[StageDecl], *, pairs: bool) -> list[tuple[int, ...]]:
    """Width tuples that put each stage at each of its widths (the others at their largest),
    and with ``pairs`` each (source, stage) pair at each combination: the previous stage's, and
    a skip's source."""
    top = _largest(stages)
    out: dict[tuple[int, ...], None] = {top: None}
    for i, st in enumerate(stages):
        sources = [i - 1] if i else []
        if st.skip is not None:
            sources.append(st.skip.source)
        combos: list[tuple[int, int | None, int]] = [(i, None, w) for w in st.widths]
        if pairs and sources:
            combos = [
                (s, a, b)
                for s in sources
                for a, b in itertools.product(stages[s].widths, st.widths)
            ]
        for source, a, b in combos:
            widths = list(top)
            widths[i] = b
            if a is not None:
                widths[source] = a
            out[tuple(widths)] = None
    return list(out)


def _extreme_pairs(stages: Sequence[StageDecl]) -> list[tuple[int, ...]]:
    """Width tuples with, for each stage, the element-wise largest (previous width, width) pair
    of each kind (narrowing, equal, widening) that the widths allow, the other stages at their
    largest: a downsampler's weights grow with both widths, and some exist only when they differ."""
    top = _largest(stages)
    out: dict[tuple[int, ...], None] = {top: None}
    for i in range(1, len(stages)):
        before, here = stages[i - 1].widths, stages[i].widths
        pairs = [(max(before), max(here))]
        narrower = [b for b in here if b < max(before)]
        if narrower:
            pairs.append((max(before), max(narrower)))
        wider = [a for a in before if a < max(here)]
        if wider:
            pairs.append((max(wider), max(here)))
        equal = set(before) & set(here)
        if equal:
            pairs.append((max(equal), max(equal)))
        for a, b in pairs:
            widths = list(top)
            widths[i - 1], widths[i] = a, b
            out[tuple(widths)] = None
    return list(out)


def _any_keyed(
    d: SpaceDecl, by: str, *, also: str | None = None, kinds: Sequence[str] | None = None
) -> bool:
    """Whether an op of the space (of these registry kinds) is keyed by ``by`` (and ``also``)."""

    def hit(rule: Sharing) -> bool:
        return by in rule.keyed_by and (also is None or also in rule.keyed_by)

    for kind, ref in declared_ops(d):
        if kinds is not None and kind not in kinds:
            continue
        op = REGISTRIES[kind].get(ref.name)
        if hit(_rule(op, op.complete(ref.kwargs, kind))):
            return True
    structural = [SKIP_MERGE] if any(st.skip for st in d.stages) else []
    if any(st.latents for st in d.stages):
        structural += [LATENT_TOKENS, LATENT_READ, LATENT_WRITE]
    if any(st.nested_ratio or _nests(st) for st in d.stages):
        structural.append(NESTED_MLP)
    return kinds is None and any(hit(_rule(op, op.defaults())) for op in structural)


def _nests(st: StageDecl) -> bool:
    return st.fixed is not None and any(b.nested_ratio for b in st.fixed)


def _distinct_paths(d: SpaceDecl) -> list[_Path]:
    """One path (stem, downsamplers) per distinct sequence of what grid-keyed weights depend
    on: each stage's token grid and prefix tokens, and its downsampler when that is grid-keyed."""
    inp = d.input
    out: list[_Path] = []
    for n in d.num_stages:
        # (signature so far) -> (stem, downsamplers so far, grid, prefix tokens)
        states: dict[tuple[Any, ...], tuple[Op, tuple[Op, ...], tuple[int, ...], int]] = {}
        for stem in d.stems:
            op = REGISTRIES["stem"].get(stem.name)
            params = op.complete(stem.kwargs, "stem")
            grid = op.out_grid(OpContext(dim=inp.in_channels, grid=inp.grid), params)
            prefix = prefix_tokens(params)
            states.setdefault((grid, prefix), (stem, (), grid, prefix))
        for st in d.stages[:n]:
            grown: dict[tuple[Any, ...], tuple[Op, tuple[Op, ...], tuple[int, ...], int]] = {}
            for signature, (stem, downs, grid, prefix) in states.items():
                for down in st.downsamples:
                    op = REGISTRIES["downsample"].get(down.name)
                    params = op.complete(down.kwargs, "downsample")
                    ctx = OpContext(dim=1, grid=grid, prefix=prefix, out_dim=1)
                    after = (op.out_grid(ctx, params), op.out_prefix(ctx, params))
                    keyed = down if GRID in _rule(op, params).keyed_by else None
                    grown.setdefault(
                        (*signature, keyed, grid, prefix, after),
                        (stem, (*downs, down), after[0], after[1]),
                    )
            states = grown
        out += [_Path(n, stem, downs) for stem, downs, _, _ in states.values()]
    return out


def extreme_spec(space: SearchSpace, *, largest: bool, passes: int = 2) -> ArchSpec:
    """The spec with the most (or fewest) parameters, MACs breaking ties, found by coordinate
    search over the decisions from all-largest (all-smallest) numeric choices. It ignores the
    space's constraints: the sandwich rule trains the supernet's extremes."""
    sign = 1.0 if largest else -1.0

    def score(values: np.ndarray) -> tuple[float, float]:
        cost = spec_cost(space.decode(values))
        return sign * cost.params, sign * cost.macs

    values = np.zeros(len(space.dims), dtype=np.int64)
    for i, dim in enumerate(space.dims):
        if numeric_dim(dim):
            pick = np.argmax if largest else np.argmin
            values[i] = int(pick(np.array(dim.choices, dtype=float)))
    for _ in range(passes):
        changed = False
        for i, dim in enumerate(space.dims):
            if dim.size < 2 or numeric_dim(dim):
                continue
            best, best_score = values[i], score(values)
            for v in range(dim.size):
                values[i] = v
                s = score(values)
                if s > best_score:
                    best, best_score, changed = v, s, True
            values[i] = best
        if not changed:
            break
    return space.decode(values)


def numeric_dim(dim: Any) -> bool:
    return bool(dim.ordinal) and all(isinstance(c, int | float) for c in dim.choices)


def extreme_values(space: SearchSpace, values: np.ndarray, *, largest: bool) -> np.ndarray:
    """``values`` with numeric dimensions (depth, width, repeat) at their extreme, and every op
    choice replaced by the variant of the same op with the most (fewest) parameters (kernel
    size, MLP ratio, head size): the op *types* stay as drawn.

    In a hybrid space the globally largest spec fixes one mixer type per block, so a sandwich
    built on it would train those mixers' weights on every step and the others only when drawn
    at random, biasing inherited accuracy towards them. Drawing the types per step and taking
    the extremes of the elastic dimensions within them keeps every type equally exposed."""
    sign = 1.0 if largest else -1.0
    out = np.array(values, dtype=np.int64)
    for i, dim in enumerate(space.dims):
        if numeric_dim(dim):
            pick = np.argmax if largest else np.argmin
            out[i] = int(pick(np.array(dim.choices, dtype=float)))
    for i, dim in enumerate(space.dims):
        if numeric_dim(dim) or not all(isinstance(c, Op) for c in dim.choices):
            continue
        name = dim.choices[out[i]].name
        variants = [k for k, c in enumerate(dim.choices) if c.name == name]
        if len(variants) < 2:
            continue
        scored = []
        for k in variants:
            out[i] = k
            cost = spec_cost(space.decode(out))
            scored.append((sign * cost.params, sign * cost.macs, -k, k))
        out[i] = max(scored)[3]
    return out
