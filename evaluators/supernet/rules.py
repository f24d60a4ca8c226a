"""Which ops share weights in the supernet, and how a small tensor is cut from a large one.

Every shared parameter is one "largest" tensor per (place in the network, op, parameter). A
subnet's parameter is a slice of it (`take`):

* channels: the prefix of each axis (OFA / BigNAS elastic width; an MLP's hidden units and a
  SepConv's expansion are prefixes too, as in MatFormer);
* packed axes (``qkv`` = [q; k; v], GLU's [value; gate], patch merging's 2x2 neighbours, the
  channel groups of a grouped op, g^n conv's gates of relative sizes 1 : 1 : 2 : 4): the same
  prefix inside every piece, so that q stays q when the width shrinks;
* relative-offset tables (a neighbourhood's position bias): the centred window, like kernels;
* convolution kernels: the centred k x k window of the largest kernel (OFA, Cai et al., "Once for
  All: Train One Network and Specialize it for Efficient Deployment", ICLR 2020, Sec. 3.2). OFA
  also learns a small transform matrix per kernel size; we use the plain centre crop, the
  alternative the issue allows, so an extracted model is a pure slice.

Which parameters are elastic (their values share one weight set) and which get a weight set per
value is part of each op's own definition: `search_space.ops.sharing.Sharing`, the ``sharing``
field of its `OpDef` (the per-op decisions are listed in docs/ops.md and summarised in
docs/supernet.md). A strict supernet refuses an op that declares none; a lenient one
(``strict=False``) gives it `UNSHARED`, one weight set per exact shape, which is always correct and
never shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from search_space.ops import REGISTRIES
from search_space.ops.sharing import GRID, UNSHARED, WIDTH, Sharing

__all__ = ["GRID", "UNSHARED", "WIDTH", "Sharing", "Slot", "supported", "take"]


def supported(kind: str) -> list[str]:
    """Names of the registered ops of one kind that declare a sharing rule (all built-ins)."""
    registry = REGISTRIES[kind]
    return [name for name in registry.names() if registry.get(name).sharing is not None]


@dataclass(frozen=True)
class Slot:
    """Where a subnet parameter comes from: the shared tensor's key and how to cut it.

    Attributes:
        key: the shared tensor.
        chunk: (axis, pieces) of a packed axis: ``pieces`` equal pieces, or pieces of these
            relative sizes (a tuple); each piece keeps its own prefix.
        conv: a convolution weight: axes 2+ are kernel axes, centre-cropped.
        centred: first axis from which the axes are centre-cropped (relative-offset tables).
    """

    key: str
    chunk: tuple[int, int | tuple[int, ...]] | None
    conv: bool
    centred: int | None = None


def take(full: torch.Tensor, shape: tuple[int, ...], slot: Slot) -> torch.Tensor:
    """The view of ``full`` a parameter of ``shape`` uses (differentiable; see the module doc)."""
    out = full
    centred = 2 if slot.conv else slot.centred
    for axis, size in enumerate(shape):
        largest = out.shape[axis]
        if size == largest:
            continue
        if slot.chunk is not None and slot.chunk[0] == axis:
            out = _pieces(out, axis, size, slot.chunk[1])
        elif centred is not None and axis >= centred:
            out = out.narrow(axis, (largest - size) // 2, size)
        else:
            out = out.narrow(axis, 0, size)
    return out


def _pieces(
    full: torch.Tensor, axis: int, size: int, pieces: int | tuple[int, ...]
) -> torch.Tensor:
    """The same prefix of every piece of a packed axis, the pieces in their order."""
    largest = full.shape[axis]
    if isinstance(pieces, int):
        if largest % pieces or size % pieces:
            raise ValueError(f"cannot cut {largest} -> {size} channels in {pieces} pieces")
        out = full.unflatten(axis, (pieces, largest // pieces))
        return out.narrow(axis + 1, 0, size // pieces).flatten(axis, axis + 1)
    total = sum(pieces)
    big = [largest * w // total for w in pieces]
    small = [size * w // total for w in pieces]
    if sum(big) != largest or sum(small) != size:
        raise ValueError(f"cannot cut {largest} -> {size} channels in pieces {list(pieces)}")
    parts = full.split(big, dim=axis)
    return torch.cat([p.narrow(axis, 0, n) for p, n in zip(parts, small, strict=True)], dim=axis)
