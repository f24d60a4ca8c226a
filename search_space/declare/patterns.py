"""Block patterns: how the token mixers of a stage are assigned to its blocks.

The documents arrange mixers in a few recurring ways, and a stage declares which it allows:

- ``uniform``: one mixer for the whole stage (ConvNeXt, PoolFormer);
- ``{last_k: [1, 2], tail: [...]}``: the last k blocks use a mixer from ``tail``, the others one
  mixer of the stage (EfficientFormer's num_vit, VCMamba's Mamba count);
- ``{periodic: [2, 5], every: [...]}``: every p-th block uses a mixer from ``every``, the others one
  mixer of the stage (Swin's shifted windows with p=2, Next-ViT's [conv x4, transformer] with p=5);
- ``free``: every block chooses independently.

A pattern is a "mask" of the positions that take the second mixer. Counting distinct stages uses
the masks, because two patterns can produce the same sequence (``last_k`` with k >= depth is
``uniform``); the count is exact, not an upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    """One allowed pattern of a stage.

    Attributes:
        kind: ``uniform``, ``last_k``, ``periodic`` or ``free``.
        values: the k (last_k) or period (periodic) choices; empty otherwise.
        base: indices (into the stage's mixer list) of the mixers for ordinary blocks.
        other: indices of the mixers for the marked blocks (last_k, periodic).
    """

    kind: str
    values: tuple[int, ...]
    base: tuple[int, ...]
    other: tuple[int, ...] = ()

    def mask(self, value: int, depth: int) -> tuple[bool, ...]:
        """Positions (True) that take the ``other`` mixer, for one value of k or p."""
        if self.kind == "last_k":
            k = min(value, depth)
            return tuple(i >= depth - k for i in range(depth))
        if self.kind == "periodic":
            return tuple((i + 1) % value == 0 for i in range(depth))
        return (False,) * depth

    def sequence(self, depth: int, value: int, x: int, y: int) -> list[int]:
        """The mixer indices of a stage of ``depth`` blocks (not for ``free``)."""
        return [y if m else x for m in self.mask(value, depth)]

    def match(self, seq: Sequence[int]) -> tuple[int, int, int] | None:
        """(value index, x, y) that reproduces ``seq``, preferring small indices; None if none."""
        depth = len(seq)
        for vi, value in enumerate(self.values or (0,)):
            mask = self.mask(value, depth)
            xs = {s for s, m in zip(seq, mask, strict=True) if not m}
            ys = {s for s, m in zip(seq, mask, strict=True) if m}
            if len(xs) > 1 or len(ys) > 1:
                continue
            x = xs.pop() if xs else None
            y = ys.pop() if ys else None
            if x is None:  # every position marked: any base mixer will do
                x = self.base[0]
            if y is None:
                y = self.other[0] if self.other else x
            if x in self.base and (self.kind == "uniform" or y in self.other):
                return vi, x, y
        return None


def count_sequences(patterns: Sequence[Pattern], depth: int) -> int:
    """Exact number of distinct mixer sequences of length ``depth`` the patterns produce."""
    free_values: set[int] = set()
    constants: set[int] = set()
    # two-valued sequences, keyed by their partition of positions, as (value on part, value off)
    two_valued: dict[tuple[bool, ...], set[tuple[int, int]]] = {}
    for pat in patterns:
        if pat.kind == "free":
            free_values |= set(pat.base)
            continue
        if pat.kind == "uniform":
            constants |= set(pat.base)
            continue
        for value in pat.values:
            mask = pat.mask(value, depth)
            if not any(mask):
                constants |= set(pat.base)
                continue
            if all(mask):
                constants |= set(pat.other)
                continue
            constants |= set(pat.base) & set(pat.other)
            # canonical partition: the side that contains position 0 is "off"
            canonical = mask if not mask[0] else tuple(not m for m in mask)
            pairs = two_valued.setdefault(canonical, set())
            for x in pat.base:
                for y in pat.other:
                    if x != y:
                        pairs.add((y, x) if canonical == mask else (x, y))
    total = len(free_values) ** depth if free_values else 0
    total += sum(1 for c in constants if c not in free_values)
    for pairs in two_valued.values():
        total += sum(1 for on, off in pairs if on not in free_values or off not in free_values)
    return total
