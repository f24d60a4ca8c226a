"""MambaOut's Gated CNN, "MambaOut: Do We Really Need Mamba for Vision?" (timm
``mambaout.GatedConvBlock`` without its norm, shortcut and layer scale, which the block owns)."""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.convs import conv_nd, left_pad
from search_space.ops.token_mixers.gated_cnn import gated_cnn_widths


class GatedCnn(nn.Module):
    """``fc2(act(g) * cat(i, dwconv(c)))`` with ``[g, i, c] = fc1(x)`` split h, h - c, c.

    Layout: grid_last ``(B, *grid, C)``; prefix tokens get a zero update. Complexity
    O(N d h + N c k^r), h = int(ratio * d), c = int(conv_ratio * d).
    Cost: params 2 d h + 2h + c (k^r + 1) + h d + d; MACs N (3 d h + c k^r).
    With ``causal`` (1-D) the depthwise conv pads k - 1 cells on the left only.
    """

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        ratio: float,
        kernel: int,
        conv_ratio: float,
        act: str,
        causal: bool = False,
    ) -> None:
        super().__init__()
        hidden, conv = gated_cnn_widths(dim, {"ratio": ratio, "conv_ratio": conv_ratio})
        self.split = [hidden, hidden - conv, conv]
        self.past = kernel - 1 if causal else 0
        self.fc1 = nn.Linear(dim, 2 * hidden)
        self.act = make_activation(act)
        padding = 0 if causal else kernel // 2
        self.conv = conv_nd(len(grid), conv, conv, kernel, padding=padding, groups=conv)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, i, c = torch.split(self.fc1(x), self.split, dim=-1)
        c = self.conv(left_pad(c.movedim(-1, 1), self.past)).movedim(1, -1)
        return self.fc2(self.act(g) * torch.cat((i, c), dim=-1))
