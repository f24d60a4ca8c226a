"""How an op's weights are shared in a weight-sharing supernet: part of every op's definition.

Who reads it: `evaluators.supernet` keeps one *largest* tensor per (place in the network, op,
parameter) and cuts each subnet's parameter from it. Every registered `OpDef` declares a
`Sharing` (its ``sharing`` field), so the supernet never guesses; the contract suite
(`tests/contracts/test_sharing.py`) fails for a registered op without one (`missing_sharing`).

An op's parameters split into two groups:

* ``elastic`` parameters only change *how much* of a weight is used or how it is split: every value
  reads the same tensor. A width is always elastic (the prefix of every channel axis, OFA and
  BigNAS), as are hidden-unit ratios (a prefix of the hidden units, MatFormer), head sizes and head
  counts (heads are contiguous channel groups) and convolution kernels (the centred k x k window
  of the largest kernel, OFA's kernel sharing without its transform matrices).
* every other parameter changes *what* a weight means; each of its values gets its own weight set
  (a window size with its relative-position table, a group count, an activation, a bias flag).

``keyed_by`` adds the context to that key when weights depend on it: ``grid`` for weights that are
a function of the token grid (token MLPs, global filters, position tables), ``width`` for ops whose
channel layout is not a prefix of a wider one (a selective SSM's packed ``x_proj``, HiLo's Hi-Fi /
Lo-Fi channel split).

``chunks`` names packed axes: ``qkv`` = [q; k; v] is cut as the same prefix of every piece, so q
stays q when the width shrinks. ``centred`` names tables indexed by a relative offset (e.g. a
neighbourhood's relative-position bias), cut like kernels: the centred window.

This module is torch-free; `evaluators.supernet.rules.take` does the cutting.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search_space.ops.base import OpDef
    from search_space.registry import Registry

GRID, WIDTH = "grid", "width"
KEYS = (GRID, WIDTH)
# pieces of a packed axis: the 2**rank neighbours of a 2x2 (or 2) patch merge
NEIGHBOURS = "2**rank"

# equal pieces (int), as many equal pieces as a parameter says (its name), the 2**rank neighbours
# (NEIGHBOURS), or pieces of relative sizes (a tuple of ints)
Pieces = int | str | tuple[int, ...]


@dataclass(frozen=True)
class Sharing:
    """How one op shares weights in a supernet (see the module docstring).

    Attributes:
        elastic: parameters whose values share one weight set.
        chunks: parameter-name prefix inside the op's module -> (axis, pieces) for packed axes;
            the first matching prefix applies.
        centred: parameter-name prefix -> first axis from which the axes are cut as centred
            windows (relative-offset tables). Convolution weights are always centre-cropped on
            their kernel axes and need no entry.
        keyed_by: ``grid`` and/or ``width``: separate weight sets per token grid (with its
            prefix tokens) or per (input, output) width.
        note: why, in one line, when the choice is not obvious (shown in docs/ops.md).
    """

    elastic: Collection[str] = ()
    chunks: Mapping[str, tuple[int, Pieces]] = field(default_factory=dict)
    centred: Mapping[str, int] = field(default_factory=dict)
    keyed_by: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "elastic", frozenset(self.elastic))
        object.__setattr__(self, "chunks", dict(self.chunks))
        object.__setattr__(self, "centred", dict(self.centred))
        object.__setattr__(self, "keyed_by", tuple(self.keyed_by))
        unknown = [k for k in self.keyed_by if k not in KEYS]
        if unknown:
            raise ValueError(f"keyed_by: unknown {unknown}; allowed: {list(KEYS)}")

    def __hash__(self) -> int:  # the mappings are never mutated after construction
        return hash(
            (
                self.elastic,
                tuple(self.chunks.items()),
                tuple(self.centred.items()),
                self.keyed_by,
                self.note,
            )
        )

    def describe(self) -> str:
        """One line for docs/ops.md: what is elastic, what is keyed, what is packed."""
        elastic = sorted(self.elastic)
        if WIDTH not in self.keyed_by:
            elastic = ["width", *elastic]
        parts = []
        if elastic:
            parts.append("elastic: " + ", ".join(elastic))
        if self.keyed_by:
            parts.append("one set per " + " and ".join(self.keyed_by))
        if self.chunks:
            parts.append("packed: " + ", ".join(p.rstrip(".") for p in self.chunks))
        if self.centred:
            parts.append("centred: " + ", ".join(p.rstrip(".") for p in self.centred))
        return "; ".join(parts)


# an op's rule: one `Sharing`, or a function of the op's parameters for an op whose parameters
# switch between different structures (it may only read parameters it keeps non-elastic)
SharingRule = Sharing | Callable[[Mapping[str, Any]], Sharing]

# the rule of an op that shares nothing: one weight set per grid and width (always correct)
UNSHARED = Sharing(keyed_by=(GRID, WIDTH), note="one weight set per exact shape")


def resolve(rule: SharingRule, params: Mapping[str, Any]) -> Sharing:
    """The `Sharing` of an op with these (complete) parameters."""
    return rule if isinstance(rule, Sharing) else rule(params)


def describe(rule: SharingRule | None, examples: Iterable[Mapping[str, Any]] = ()) -> str:
    """``rule`` in words for the generated docs; a parameter-dependent rule lists its cases."""
    if rule is None:
        return "**none declared**"
    if isinstance(rule, Sharing):
        return rule.describe() + (f" ({rule.note})" if rule.note else "")
    seen: dict[str, None] = {}
    for params in examples:
        r = rule(params)
        seen[r.describe() + (f" ({r.note})" if r.note else "")] = None
    return " / ".join(seen)


def problems(op: OpDef) -> list[str]:
    """What is wrong with ``op``'s sharing rule (empty when it declares a sound-looking one):
    no rule, or a rule naming parameters the op does not have."""
    if op.sharing is None:
        return [
            f"{op.kind} {op.name!r} declares no weight-sharing rule: set "
            "OpDef(sharing=Sharing(...)) (see docs/extending.md)"
        ]
    names = {p.name for p in op.params}
    declared = op.sharing
    rules = [resolve(declared, op.complete(example, "params")) for example in ({}, *op.examples)]
    out = []
    for rule in rules:
        for name in sorted(set(rule.elastic) - names):
            out.append(f"{op.kind} {op.name!r}: elastic parameter {name!r} is not a parameter")
        for prefix, (_, pieces) in rule.chunks.items():
            if isinstance(pieces, str) and pieces != NEIGHBOURS and pieces not in names:
                out.append(
                    f"{op.kind} {op.name!r}: chunks[{prefix!r}] names no parameter {pieces!r}"
                )
            if isinstance(pieces, str) and pieces in rule.elastic:
                out.append(
                    f"{op.kind} {op.name!r}: chunks[{prefix!r}] counts pieces by the elastic "
                    f"parameter {pieces!r}; it must be keyed"
                )
    return list(dict.fromkeys(out))  # one message per problem, not per example


def missing_sharing(registries: Mapping[str, Registry[OpDef]]) -> list[str]:
    """One message per registered op whose sharing rule is missing or names unknown parameters;
    the contract suite calls it over every registry."""
    out = []
    for registry in registries.values():
        for name in registry.names():
            out += problems(registry.get(name))
    return out
