"""Conversions between the token tensor ``(B, P + N, C)`` and the layouts modules declare."""

from __future__ import annotations

import torch

from search_space.ops.base import LAYOUT_GRID, LAYOUT_GRID_LAST, LAYOUT_SEQUENCE, LAYOUT_TOKENS


def to_layout(x: torch.Tensor, layout: str, grid: tuple[int, ...], prefix: int) -> torch.Tensor:
    """Takes the tokens a module of ``layout`` consumes (prefix tokens only for ``tokens``)."""
    if layout == LAYOUT_TOKENS:
        return x
    seq = x[:, prefix:] if prefix else x
    if layout == LAYOUT_SEQUENCE:
        return seq
    b, _, c = seq.shape
    if layout == LAYOUT_GRID_LAST:
        return seq.reshape(b, *grid, c)
    if layout == LAYOUT_GRID:
        return seq.transpose(1, 2).reshape(b, c, *grid)
    raise ValueError(f"unknown layout {layout!r}")


def from_layout(y: torch.Tensor, layout: str, prefix: int) -> torch.Tensor:
    """Back to ``(B, P + N, C)``; prefix tokens get a zero update from grid-only modules."""
    if layout == LAYOUT_TOKENS:
        return y
    if layout == LAYOUT_GRID:
        y = y.flatten(2).transpose(1, 2)
    elif layout == LAYOUT_GRID_LAST:
        y = y.flatten(1, -2)
    if prefix:
        y = torch.cat([y.new_zeros(y.shape[0], prefix, y.shape[-1]), y], dim=1)
    return y


def tokens_to_grid(x: torch.Tensor, grid: tuple[int, ...], prefix: int) -> torch.Tensor:
    """Grid tokens of ``x`` as a channels-first ``(B, C, *grid)`` tensor."""
    return to_layout(x, LAYOUT_GRID, grid, prefix)


def grid_to_tokens(y: torch.Tensor) -> torch.Tensor:
    """A channels-first grid as ``(B, N, C)`` tokens."""
    return y.flatten(2).transpose(1, 2)
