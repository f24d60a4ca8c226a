"""MBConv (inverted residual with squeeze-excite) on 1-D or 2-D grids.

Papers: "MobileNetV2: Inverted Residuals and Linear Bottlenecks"; "EfficientNet: Rethinking Model
Scaling for Convolutional Neural Networks"; as used in "MaxViT: Multi-Axis Vision Transformer".
Parameterisation follows timm's ``maxxvit.MbConvBlock`` (MaxViT's conv config), so whole-model
parameter counts match timm's tables.
"""

from __future__ import annotations

import torch
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.convs import conv_nd
from search_space.nn.norms import ChannelsFirstNorm
from search_space.ops.token_mixers.mbconv import mbconv_hidden, se_width


class SqueezeExcite(nn.Module):
    """``x * sigmoid(fc2(act(fc1(mean(x)))))`` with 1x1 convs (biases), timm's ``SEModule``.

    Cost: params 2 c r + c + r; MACs 2 c r (the mean over the grid is not counted, as fvcore).
    """

    def __init__(self, rank: int, channels: int, reduced: int, act: str) -> None:
        super().__init__()
        self.fc1 = conv_nd(rank, channels, reduced, 1)
        self.act = make_activation(act)
        self.fc2 = conv_nd(rank, reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(pooled))))


class MBConvBody(nn.Sequential):
    """The inverted-residual path, optionally strided (the stride sits on the depthwise conv,
    MaxViT's ``stride_mode='dw'``).

    expand 1x1 (c_in -> m, no bias) -> norm, act -> k^r depthwise (no bias) -> norm, act ->
    SE (squeeze width int(se_ratio * c_out)) -> project 1x1 (m -> c_out, bias; or no bias + norm
    when ``out_norm``). m = make_divisible(expand * c_out, 8).
    """

    def __init__(
        self,
        rank: int,
        c_in: int,
        c_out: int,
        *,
        stride: int,
        expand: float,
        kernel: int,
        se_ratio: float,
        act: str,
        se_act: str,
        norm: str,
        out_norm: bool,
    ) -> None:
        mid = mbconv_hidden(c_out, expand)
        reduced = se_width(c_out, se_ratio)
        layers: list[nn.Module] = [
            conv_nd(rank, c_in, mid, 1, bias=False),
            ChannelsFirstNorm(norm, mid),
            make_activation(act),
            conv_nd(rank, mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
            ChannelsFirstNorm(norm, mid),
            make_activation(act),
        ]
        if reduced:
            layers.append(SqueezeExcite(rank, mid, reduced, se_act))
        layers.append(conv_nd(rank, mid, c_out, 1, bias=not out_norm))
        if out_norm:
            layers.append(ChannelsFirstNorm(norm, c_out))
        super().__init__(*layers)


class MBConv(nn.Module):
    """MBConv token mixer: the stride-1 inverted residual body; the block adds the shortcut and
    its norm is MaxViT's ``pre_norm`` (batch norm, no activation).

    Layout: grid ``(B, C, *grid)``. Complexity O(N d m + N m k^r), m = hidden width.
    Cost: params d m + m k^r + m d + d (bias) + 2 (2m) norm + SE (2 m r + m + r);
    MACs N (2 d m + m k^r + 4 m) + 2 m r with batch norms (see ``mbconv_body_cost``).
    """

    def __init__(
        self,
        dim: int,
        *,
        grid: tuple[int, ...],
        expand: float,
        kernel: int,
        se_ratio: float,
        act: str,
        se_act: str,
        norm: str,
        out_norm: bool,
    ) -> None:
        super().__init__()
        self.body = MBConvBody(
            len(grid),
            dim,
            dim,
            stride=1,
            expand=expand,
            kernel=kernel,
            se_ratio=se_ratio,
            act=act,
            se_act=se_act,
            norm=norm,
            out_norm=out_norm,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
