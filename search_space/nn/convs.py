"""Rank-generic convolution and pooling constructors (1-D grids for sequences, 2-D for images)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def conv_nd(rank: int, *args: Any, **kwargs: Any) -> nn.Module:
    """``nn.Conv1d``/``Conv2d``/``Conv3d`` for a grid of the given rank."""
    return _CONV[rank](*args, **kwargs)


def avg_pool_nd(rank: int, *args: Any, **kwargs: Any) -> nn.Module:
    return _AVG_POOL[rank](*args, **kwargs)


def left_pad(x: torch.Tensor, cells: int) -> torch.Tensor:
    """``x`` (channels first, sequence last) with ``cells`` zeros before the first position: a
    convolution of kernel ``cells + 1`` and no padding then sees only the past (causal)."""
    return F.pad(x, (cells, 0)) if cells else x
