"""Rank-generic window helpers for Swin-style window attention (1-D sequences and 2-D images).

Windows are cut from a channels-last grid ``(B, *grid, C)`` whose extent is a multiple of the
window on every axis (see `search_space.ops.token_mixers.attention.window_geometry`).
"""

from __future__ import annotations

import itertools
import math

import torch


def window_partition(x: torch.Tensor, windows: tuple[int, ...]) -> torch.Tensor:
    """``(B, *grid, C)`` -> ``(B, num_windows, window_tokens, C)``, windows in row-major order."""
    b, *grid, c = x.shape
    rank = len(windows)
    split: list[int] = []
    for g, w in zip(grid, windows, strict=True):
        split += [g // w, w]
    # axes (B, n_1, w_1, ..., n_k, w_k, C) -> (B, n_1..n_k, w_1..w_k, C)
    order = [0, *(1 + 2 * i for i in range(rank)), *(2 + 2 * i for i in range(rank)), 1 + 2 * rank]
    x = x.reshape(b, *split, c).permute(*order)
    return x.reshape(b, -1, math.prod(windows), c)


def window_reverse(
    x: torch.Tensor, windows: tuple[int, ...], grid: tuple[int, ...]
) -> torch.Tensor:
    """Inverse of `window_partition`: ``(B, windows, window_tokens, C)`` -> ``(B, *grid, C)``."""
    b, _, _, c = x.shape
    rank = len(windows)
    counts = [g // w for g, w in zip(grid, windows, strict=True)]
    x = x.reshape(b, *counts, *windows, c)
    # axes (B, n_1..n_k, w_1..w_k, C) -> (B, n_1, w_1, ..., n_k, w_k, C)
    order = [0, *itertools.chain.from_iterable((1 + i, 1 + rank + i) for i in range(rank))]
    return x.permute(*order, 1 + 2 * rank).reshape(b, *grid, c)


def _window_coords(windows: tuple[int, ...]) -> torch.Tensor:
    """``(window_tokens, rank)`` coordinates of the positions of one window, row-major."""
    axes = [torch.arange(w) for w in windows]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(windows))


def relative_position_index(windows: tuple[int, ...]) -> torch.Tensor:
    """``(T, T)`` index into a ``prod(2 w - 1)``-row bias table for every query/key pair.

    Pairs with the same coordinate offset share a row, which is what makes the bias relative.
    """
    coords = _window_coords(windows)
    offsets = coords[:, None, :] - coords[None, :, :] + torch.tensor(windows) - 1
    index = torch.zeros(offsets.shape[:2], dtype=torch.long)
    for axis, w in enumerate(windows):
        index = index * (2 * w - 1) + offsets[..., axis]
    return index


def _axis_labels(size: int, padded: int, window: int, shift: int) -> tuple[list[int], list[bool]]:
    """Per position of the shifted padded axis: which contiguous source segment it came from, and
    whether it is padding.

    After rolling by ``-shift`` the last window holds the padded axis' tail next to its head; the
    labels tell those apart so the mask can keep them from attending to each other (Swin's mask).
    """
    labels, pads = [], []
    for p in range(padded):
        source = (p + shift) % padded
        labels.append(0 if p < padded - window else (1 if p < padded - shift else 2))
        pads.append(source >= size)
    return labels, pads


def window_attention_mask(
    grid: tuple[int, ...],
    windows: tuple[int, ...],
    shifts: tuple[int, ...],
    padded: tuple[int, ...],
) -> torch.Tensor | None:
    """Additive ``(num_windows, T, T)`` mask (0 or -inf) for shifted and/or padded windows.

    A query attends to a key of its window when both come from the same contiguous region of the
    unshifted grid and the key is not padding. Padding queries may also attend to padding keys, so
    that no row is fully masked (their outputs are cropped away). None when nothing is masked.
    """
    if not any(shifts) and tuple(grid) == tuple(padded):
        return None
    axes = [
        _axis_labels(g, p, w, s) for g, p, w, s in zip(grid, padded, windows, shifts, strict=True)
    ]
    region = torch.zeros(padded, dtype=torch.long)
    pad = torch.zeros(padded, dtype=torch.bool)
    for axis, (labels, pads) in enumerate(axes):
        view = [1] * len(padded)
        view[axis] = padded[axis]
        region = region * 3 + torch.tensor(labels).view(view)
        pad = pad | torch.tensor(pads).view(view)
    region_w = window_partition(region[None, ..., None], windows)[0, ..., 0]
    pad_w = window_partition(pad[None, ..., None], windows)[0, ..., 0]
    allowed = region_w[:, :, None] == region_w[:, None, :]
    allowed &= ~pad_w[:, None, :] | pad_w[:, :, None]
    mask = torch.zeros(allowed.shape)
    return mask.masked_fill_(~allowed, float("-inf"))


def window_bias(
    table: torch.Tensor | None,
    index: torch.Tensor | None,
    tokens: int,
    heads: int,
    mask: torch.Tensor | None,
) -> torch.Tensor | None:
    """The additive attention bias of a windowed mixer: the relative-position bias gathered
    from ``table`` by ``index`` as (heads, T, T), plus the window mask; None when neither."""
    bias = None
    if table is not None and index is not None:
        bias = table[index.reshape(-1)].reshape(tokens, tokens, heads).permute(2, 0, 1)
    if mask is not None:
        bias = mask if bias is None else bias + mask
    return bias
