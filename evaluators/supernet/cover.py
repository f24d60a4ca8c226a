"""Specs of a declared space that together touch every shared tensor at its largest shape.

The supernet sizes each shared tensor as the element-wise maximum, over the space, of the
parameter shapes that use it. Building every spec is impossible; these covering specs suffice:
for every stem, every combination of downsamplers and number of stages (they set the grids),
the largest widths (and, when an op keys its weights by width, every width), and a rotation of
the stage's token mixers, channel mixers and norms over its deepest block positions, so that each
(block, mixer variant) pair appears with every grid. Also the largest and smallest specs of a
space by parameter count, used by the sandwich rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from evaluators.supernet.rules import WIDTH
from evaluators.supernet.slots import rule_for
from search_space.costs import spec_cost
from search_space.declare.space import SearchSpace
from search_space.errors import SpaceError
from search_space.spec import ArchSpec, Block, Op, Stage

STRUCTURE_FIELDS = "skip, latents, repeat, share, channels, nested_ratio, scope"


def check_space(space: SearchSpace, *, strict: bool) -> None:
    """Raises `SpaceError` for what the supernet cannot hold: structured stages, or (strict) an
    op without a sharing rule."""
    d = space.decl
    for s, st in enumerate(d.stages):
        if st.fixed is not None or st.repeats is not None:
            raise SpaceError(
                f"stages[{s}]",
                f"the supernet holds plain elastic stages; fixed blocks and {STRUCTURE_FIELDS} "
                "are not supported",
            )
    ops = [("stem", o.name) for o in d.stems] + [("head", o.name) for o in d.heads]
    for st in d.stages:
        ops += [("downsample", o.name) for o in st.downsamples]
        ops += [("token_mixer", o.name) for o in st.mixers]
        ops += [("channel_mixer", o.name) for o in st.channel_mixers]
    for kind, name in ops:
        rule_for(kind, name, strict=strict)


def covering_specs(space: SearchSpace) -> Iterator[ArchSpec]:
    """Specs that reach every shared tensor at its largest shape (see the module docstring)."""
    d = space.decl
    layer_scale = next((v for v in d.layer_scales if v is not None), None)
    by_width = any(
        WIDTH in rule_for(kind, op.name, strict=False).keyed_by
        for st in d.stages
        for kind, ops in (("token_mixer", st.mixers), ("channel_mixer", st.channel_mixers))
        for op in ops
    )
    for n in d.num_stages:
        stages = d.stages[:n]
        width_sets = (
            itertools.product(*(st.widths for st in stages))
            if by_width
            else [tuple(max(st.widths) for st in stages)]
        )
        rotations = max(max(len(st.mixers), len(st.channel_mixers), len(st.norms)) for st in stages)
        for stem, widths in itertools.product(d.stems, list(width_sets)):
            for downs in itertools.product(*(st.downsamples for st in stages)):
                for k in range(rotations):
                    built = []
                    for st, width, down in zip(stages, widths, downs, strict=True):
                        blocks = tuple(
                            Block(
                                st.mixers[(k + j) % len(st.mixers)],
                                st.channel_mixers[(k + j) % len(st.channel_mixers)],
                                st.norms[(k + j) % len(st.norms)],
                                layer_scale,
                            )
                            for j in range(st.max_depth)
                        )
                        built.append(Stage(width, down, blocks))
                    yield ArchSpec(d.input, stem, tuple(built), d.heads[k % len(d.heads)])


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
