"""InternImage's DCNv3 in plain torch, "InternImage: Exploring Large-Scale Vision Foundation
Models with Deformable Convolutions" (the official ``DCNv3_pytorch`` reference path, written
with ``torch.nn.functional.grid_sample``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_space.nn.norms import make_norm


def kernel_points(kernel: int, device: torch.device | None = None) -> torch.Tensor:
    """(K, 2) pixel displacements (dx, dy) of a k x k kernel, row-major (dy slow, dx fast)."""
    r = torch.arange(kernel, device=device, dtype=torch.float32) - kernel // 2
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([dx.flatten(), dy.flatten()], dim=-1)


def deformable_sample(
    value: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    *,
    kernel: int,
    groups: int,
    offset_scale: float,
) -> torch.Tensor:
    """The DCNv3 core: for every position, group and kernel point, bilinearly sample ``value``
    at ``position + offset_scale * (point + offset)`` (zeros outside the map) and sum the samples
    weighted by ``mask``.

    Args:
        value: (B, H, W, C) channels-last features; group g owns channels [g C/G, (g+1) C/G).
        offset: (B, H, W, G * K * 2) pixel offsets, (x, y) pairs per group and point.
        mask: (B, H, W, G * K) modulation weights per group and point.

    Returns:
        (B, H, W, C). With zero offsets, unit scale and a mask that does not depend on the
        position this is a depthwise k x k convolution whose kernel is shared within a group.
    """
    b, h, w, c = value.shape
    points = kernel * kernel
    base = kernel_points(kernel, value.device).to(value.dtype)  # (K, 2)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=value.device, dtype=value.dtype),
        torch.arange(w, device=value.device, dtype=value.dtype),
        indexing="ij",
    )
    centre = torch.stack([xs, ys], dim=-1)[None, :, :, None, None]  # (1, H, W, 1, 1, 2)
    offset = offset.reshape(b, h, w, groups, points, 2)
    location = centre + offset_scale * (base + offset)  # pixels, (x, y)
    # grid_sample's normalised coordinates with align_corners=False: pixel i -> (2i + 1) / size - 1
    size = torch.tensor([w, h], device=value.device, dtype=value.dtype)
    grid = (2 * location + 1) / size - 1
    grid = grid.permute(0, 3, 1, 2, 4, 5).reshape(b * groups, h * w, points, 2)
    per_group = value.reshape(b, h * w, groups, c // groups).permute(0, 2, 3, 1)
    per_group = per_group.reshape(b * groups, c // groups, h, w)
    samples = F.grid_sample(
        per_group, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (B G, C/G, H W, K)
    weights = mask.reshape(b, h * w, groups, points).transpose(1, 2)
    weights = weights.reshape(b * groups, h * w, points, 1)
    # a batched matmul, so the counter sees the modulation exactly (fvcore's einsum count is
    # rounded to numpy's printed precision)
    out = samples.transpose(1, 2) @ weights  # (B G, H W, C/G, 1)
    return out.reshape(b, groups, h, w, c // groups).permute(0, 2, 3, 1, 4).reshape(b, h, w, c)


class DeformableConv(nn.Module):
    """DCNv3: ``output_proj(sample(input_proj(x), offset(y), softmax(mask(y))))`` with
    ``y = GELU(LN(dwconv(x)))``; the mask is a softmax over each group's K points.

    Offsets and mask start at zero (the official initialisation): a fresh layer averages the
    k x k neighbourhood of every group uniformly.
    Layout: grid_last ``(B, H, W, C)``; 2-D grids only. Complexity O(N d^2 + N G K d).
    Cost: params 2 (d^2 + d) + d (k^2 + 1) + 2d + (d + 1) 3 G K; MACs N (2 d^2 + d k^2 + 5 d +
    3 d G K) + 5 N K d (4 per bilinear sample, 1 per modulation).
    """

    def __init__(
        self, dim: int, *, grid: tuple[int, ...], groups: int, kernel: int, offset_scale: float
    ) -> None:
        super().__init__()
        points = kernel * kernel
        self.kernel, self.groups, self.offset_scale = kernel, groups, offset_scale
        self.input_proj = nn.Linear(dim, dim)
        self.dw_conv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.dw_norm = make_norm("layernorm", dim)
        self.offset = nn.Linear(dim, groups * points * 2)
        self.mask = nn.Linear(dim, groups * points)
        self.output_proj = nn.Linear(dim, dim)
        for layer in (self.offset, self.mask):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        value = self.input_proj(x)
        y = F.gelu(self.dw_norm(self.dw_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)))
        mask = self.mask(y).reshape(b, h, w, self.groups, -1).softmax(-1).flatten(3)
        out = deformable_sample(
            value,
            self.offset(y),
            mask,
            kernel=self.kernel,
            groups=self.groups,
            offset_scale=self.offset_scale,
        )
        return self.output_proj(out)
