"""Dense heads: per-pixel class logits (`SegHead`) and a super-resolved image (`SRHead`).

Both read more than the last stage (`search_space.ops.base.OpDef.sources`): the builder calls
them as ``head(x, sources)`` with ``sources`` = [input image, stem output, stage 0 output, ...].
Token tensors may carry prefix (class) tokens before the grid; a dense head reads the last
``prod(grid)`` tokens of each. See `search_space.ops.dense_heads` for the parameters and costs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.activations import make_activation
from search_space.nn.norms import make_norm
from search_space.ops.dense_heads import scale_steps

Shape = tuple[int, tuple[int, ...]]  # (channels, grid)


def grid_of(tokens: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """``(B, P + N, C)`` tokens to a channels-first ``(B, C, *grid)`` map, prefix dropped."""
    n = math.prod(grid)
    return tokens[:, tokens.shape[1] - n :].transpose(1, 2).reshape(tokens.shape[0], -1, *grid)


def resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bilinear resize of a channels-first map; no op (and no counted MACs) at its own size."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class SegHead(nn.Module):
    """Per-pixel classifier at the input's resolution, ``(B, classes, H, W)``.

    ``fuse='last'``: the last stage's tokens (a U-Net's decoder has already fused its skips):
    norm then a linear classifier, or with ``hidden`` a linear to ``hidden`` channels, norm and
    activation first. ``fuse='all'``: SegFormer's all-MLP decoder over every stage's output:
    each projected to ``hidden`` channels, resized (bilinear) to the finest of their grids,
    concatenated, fused by a linear, normed and activated. Then the classifier, and a bilinear
    resize to the input's resolution.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        grid: tuple[int, ...],
        sources: tuple[Shape, ...],
        fuse: str,
        hidden: int,
        norm: str,
        act: str,
    ) -> None:
        super().__init__()
        self.out_size = tuple(sources[0][1])
        self.fuse_all = fuse == "all"
        feeds = list(sources[2:]) if self.fuse_all else [(dim, tuple(grid))]
        self.grids = [tuple(g) for _, g in feeds]
        self.target = max(self.grids, key=math.prod)
        width = hidden or dim
        self.proj = nn.ModuleList(nn.Linear(c, hidden) for c, _ in feeds) if hidden else None
        self.fuse = nn.Linear(len(feeds) * hidden, hidden) if self.fuse_all else None
        self.norm = make_norm(norm, width)
        self.act = make_activation(act)
        self.classify = nn.Linear(width, num_classes)
        self.skip_first = 2 if self.fuse_all else 0  # the input and the stem are not fused

    def forward(self, x: torch.Tensor, sources: list[torch.Tensor]) -> torch.Tensor:
        feeds = sources[self.skip_first :] if self.fuse_all else [x]
        maps = []
        for i, (tokens, grid) in enumerate(zip(feeds, self.grids, strict=True)):
            if self.proj is not None:
                tokens = self.proj[i](tokens[:, tokens.shape[1] - math.prod(grid) :])
            maps.append(resize(grid_of(tokens, grid), self.target))
        y = torch.cat(maps, dim=1) if len(maps) > 1 else maps[0]
        y = y.flatten(2).transpose(1, 2)  # tokens on the target grid
        if self.fuse is not None:
            y = self.fuse(y)
        y = self.classify(self.act(self.norm(y)))
        return resize(grid_of(y, self.target), self.out_size)


class PixelAttention(nn.Module):
    """PAN's pixel attention: ``x * sigmoid(conv1x1(x))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class SRHead(nn.Module):
    """The reconstruction of a super-resolution network: ``(B, C, scale H, scale W)``.

    ``body_conv``: a 3x3 conv on the body's output added to the stem's output (SwinIR's
    conv_after_body, PAN's trunk conv: the body learns a residual of the shallow features).
    ``upsampler``: ``pixelshuffle`` (SwinIR: conv to ``hidden`` + LeakyReLU, then per step a
    conv to r^2 ``hidden`` channels and a pixel shuffle, then a conv to the image's channels),
    ``pixelshuffledirect`` (lightweight SwinIR, ESPCN: one conv to C s^2 channels and one pixel
    shuffle) or ``nearest_conv`` (PAN: per step a nearest upsampling, a conv to ``hidden``,
    pixel attention when asked, LeakyReLU, a conv, LeakyReLU; then a conv to the image's
    channels). ``image_skip='bilinear'``: the bilinear upsampling of the input is added (PAN).
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        grid: tuple[int, ...],
        sources: tuple[Shape, ...],
        scale: int,
        upsampler: str,
        hidden: int,
        body_conv: bool,
        pixel_attention: bool,
        image_skip: str,
    ) -> None:
        super().__init__()
        del num_classes  # an image head: its output channels are the input's
        channels, self.grid, self.scale = sources[0][0], tuple(grid), scale
        self.body_conv = conv3x3(dim, dim) if body_conv else None
        self.image_skip = image_skip == "bilinear"
        self.mode = upsampler
        act = "lrelu"
        layers: list[nn.Module] = []
        if upsampler == "pixelshuffledirect":
            layers += [conv3x3(dim, channels * scale**2), nn.PixelShuffle(scale)]
        elif upsampler == "pixelshuffle":
            layers += [conv3x3(dim, hidden), make_activation(act)]
            for r in scale_steps(scale):
                layers += [conv3x3(hidden, r * r * hidden), nn.PixelShuffle(r)]
            layers.append(conv3x3(hidden, channels))
        else:  # nearest_conv
            c_in = dim
            for r in scale_steps(scale):
                layers += [nn.Upsample(scale_factor=r, mode="nearest"), conv3x3(c_in, hidden)]
                if pixel_attention:
                    layers.append(PixelAttention(hidden))
                layers += [make_activation(act), conv3x3(hidden, hidden), make_activation(act)]
                c_in = hidden
            layers.append(conv3x3(hidden, channels))
        self.upsample = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sources: list[torch.Tensor]) -> torch.Tensor:
        y = grid_of(x, self.grid)
        if self.body_conv is not None:
            y = grid_of(sources[1], self.grid) + self.body_conv(y)
        y = self.upsample(y)
        if self.image_skip:
            image = sources[0]
            y = y + F.interpolate(image, size=y.shape[2:], mode="bilinear", align_corners=False)
        return y
