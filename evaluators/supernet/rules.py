"""Which ops share weights in the supernet, and how a small tensor is cut from a large one.

Every shared parameter is one "largest" tensor per (place in the network, op, parameter). A
subnet's parameter is a slice of it (`take`):

* channels: the prefix of each axis (OFA / BigNAS elastic width; an MLP's hidden units and a
  SepConv's expansion are prefixes too, as in MatFormer);
* packed axes (``qkv`` = [q; k; v], GLU's [value; gate], patch merging's 2x2 neighbours): the same
  prefix inside every piece, so that q stays q when the width shrinks;
* convolution kernels: the centred k x k window of the largest kernel (OFA, Cai et al., "Once for
  All: Train One Network and Specialize it for Efficient Deployment", ICLR 2020, Sec. 3.2). OFA
  also learns a small transform matrix per kernel size; we use the plain centre crop, the
  alternative the issue allows, so an extracted model is a pure slice.

An op's parameters split into *elastic* ones, whose values share one weight set (a kernel size,
an MLP ratio, a head size: these only change how much of the tensor is used or how it is split
into heads), and all others, each value of which gets its own weight set (a window size changes
the relative-position table; LKA's kernel changes its decomposition). ``keyed_by`` adds the token
grid (for weights that are a function of the grid: token MLPs, global filters, window tables) or
the width (selective SSM, whose packed ``x_proj`` has a width-dependent rank) to the key.

`RULES` lists the ops that were reviewed for sharing. A strict supernet refuses any other op;
a lenient one (``strict=False``) gives such an op one weight set per exact shape, which is always
correct and never shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

GRID, WIDTH = "grid", "width"


@dataclass(frozen=True)
class ShareRule:
    """How one registered op shares weights (see the module docstring).

    Attributes:
        elastic: parameters whose values share one weight set.
        chunks: parameter-name prefix (inside the op's module) -> (axis, pieces) for packed axes;
            pieces 0 means ``2 ** rank`` of the token grid (patch merging's neighbours).
        keyed_by: ``grid`` and/or ``width``: separate weight sets per token grid or width.
    """

    elastic: frozenset[str] = frozenset()
    chunks: dict[str, tuple[int, int]] = field(default_factory=dict)
    keyed_by: tuple[str, ...] = ()


def _rule(
    elastic: tuple[str, ...] = (),
    chunks: dict[str, tuple[int, int]] | None = None,
    keyed_by: tuple[str, ...] = (),
) -> ShareRule:
    return ShareRule(frozenset(elastic), dict(chunks or {}), keyed_by)


_QKV = {"qkv.": (0, 3)}

# (registry kind, op name) -> rule. Norms are always shared by channel prefix.
RULES: dict[tuple[str, str], ShareRule] = {
    ("token_mixer", "none"): _rule(),
    ("token_mixer", "identity"): _rule(),
    ("token_mixer", "pooling"): _rule(("pool_size",)),
    ("token_mixer", "shift"): _rule(("n_div",)),
    ("token_mixer", "dwconv"): _rule(("kernel",)),
    ("token_mixer", "sepconv"): _rule(("kernel", "expansion")),
    ("token_mixer", "lka"): _rule(),
    ("token_mixer", "attention"): _rule(("head_dim",), _QKV),
    ("token_mixer", "linear_attention"): _rule(("head_dim", "feature_map"), _QKV),
    ("token_mixer", "window_attention"): _rule(("head_dim", "shift"), _QKV, (GRID,)),
    ("token_mixer", "sr_attention"): _rule(("head_dim",), {"kv.": (0, 2)}),
    ("token_mixer", "class_attention"): _rule(("head_dim",), {"kv.": (0, 2)}),
    ("token_mixer", "token_mlp"): _rule(("ratio",), keyed_by=(GRID,)),
    ("token_mixer", "global_filter"): _rule(keyed_by=(GRID,)),
    ("token_mixer", "selective_ssm"): _rule(keyed_by=(WIDTH,)),
    ("channel_mixer", "none"): _rule(),
    ("channel_mixer", "mlp"): _rule(("ratio",)),
    ("channel_mixer", "glu"): _rule(("ratio",), {"fc1.": (0, 2)}),
    ("channel_mixer", "conv_ffn"): _rule(("ratio", "kernel")),
    ("stem", "patch_embed"): _rule(),
    ("stem", "conv_stem"): _rule(),
    ("stem", "token_embed"): _rule(),
    ("stem", "feature_embed"): _rule(),
    ("downsample", "none"): _rule(),
    ("downsample", "conv"): _rule(),
    ("downsample", "pool"): _rule(),
    ("downsample", "patch_merging"): _rule(chunks={"norm.": (0, 0), "reduction.": (1, 0)}),
    # class token and positions: positions are per token of the grid, so one set per grid
    ("downsample", "embed"): _rule(keyed_by=(GRID,)),
    ("head", "classifier"): _rule(),
}

# a lenient supernet's rule for an op not in RULES: one weight set per exact shape
EXACT = _rule(keyed_by=(GRID, WIDTH))


def supported(kind: str) -> list[str]:
    """Names of the reviewed ops of one registry kind, for error messages and docs."""
    return sorted(name for k, name in RULES if k == kind)


@dataclass(frozen=True)
class Slot:
    """Where a subnet parameter comes from: the shared tensor's key and how to cut it."""

    key: str
    chunk: tuple[int, int] | None  # (axis, pieces) of a packed axis
    conv: bool  # a convolution weight: axes 2+ are kernel axes, centre-cropped


def take(full: torch.Tensor, shape: tuple[int, ...], slot: Slot) -> torch.Tensor:
    """The view of ``full`` a parameter of ``shape`` uses (differentiable; see the module doc)."""
    out = full
    for axis, size in enumerate(shape):
        largest = out.shape[axis]
        if size == largest:
            continue
        if slot.chunk is not None and slot.chunk[0] == axis:
            pieces = slot.chunk[1]
            out = out.unflatten(axis, (pieces, largest // pieces))
            out = out.narrow(axis + 1, 0, size // pieces).flatten(axis, axis + 1)
        elif slot.conv and axis >= 2:
            out = out.narrow(axis, (largest - size) // 2, size)
        else:
            out = out.narrow(axis, 0, size)
    return out
