"""The MetaFormer block: the block owns norm, residual, layer scale and drop path; mixers only mix.

``x = x + drop_path(ls1 * token_mixer(norm1(x)))``, then the same with the channel mixer. The
tensor between blocks is ``(B, P + N, C)``; each mixer receives the layout it declares.
"""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.layout import from_layout, to_layout
from search_space.nn.norms import make_norm
from search_space.ops.base import LAYOUT_TOKENS, OpDef


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Branch(nn.Module):
    """One residual branch: norm, mixer in its own layout, layer scale, drop path."""

    def __init__(
        self,
        norm: str,
        mixer: nn.Module,
        op: OpDef,
        dim: int,
        grid: tuple[int, ...],
        prefix: int,
        layer_scale: float | None,
        drop_path: float,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.norm = make_norm(norm, dim)
        self.mixer = mixer
        self.layout, self.grid, self.num_prefix = op.layout, tuple(grid), prefix
        self.scale = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = to_layout(self.norm(x), self.layout, self.grid, self.num_prefix)
        y = from_layout(self.mixer(y), self.layout, self.num_prefix)
        if not self.residual:  # the mixer carries its own skips
            if self.layout == LAYOUT_TOKENS or not self.num_prefix:
                return y
            # grid-only mixers leave prefix tokens as they were
            return torch.cat([x[:, : self.num_prefix], y[:, self.num_prefix :]], dim=1)
        return x + self.drop_path(self.scale(y))


class PrefixOnly(nn.Module):
    """Restricts a branch's update to the first ``prefix`` (class) tokens (``tokens: prefix``).

    With ``reads_all`` the branch sees every token (a token branch: class attention reads the
    grid tokens as keys and values) and only its prefix rows are kept; otherwise it sees the
    prefix tokens alone (a channel branch: norm and channel mixer run on the class tokens only,
    as in CaiT's class-attention blocks). The grid tokens pass through unchanged either way.
    """

    def __init__(self, branch: nn.Module, prefix: int, *, reads_all: bool) -> None:
        super().__init__()
        self.branch, self.num_prefix, self.reads_all = branch, prefix, reads_all

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = x[:, : self.num_prefix]
        head = self.branch(x if self.reads_all else head)[:, : self.num_prefix]
        return torch.cat([head, x[:, self.num_prefix :]], dim=1)


class MixerBlock(nn.Module):
    def __init__(self, token_branch: nn.Module, channel_branch: nn.Module | None) -> None:
        super().__init__()
        self.token = token_branch
        self.channel = channel_branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token(x)
        return self.channel(x) if self.channel is not None else x
