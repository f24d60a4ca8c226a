"""Behaviour of the DCNv3 deformable convolution beyond the contract suite's shapes and costs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evaluators.counting import count_macs
from search_space.nn.mixers.deformable import DeformableConv, deformable_sample, kernel_points
from search_space.ops import TOKEN_MIXERS, OpContext


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _grouped_conv(value: torch.Tensor, kernels: torch.Tensor, groups: int) -> torch.Tensor:
    """Depthwise conv of channels-last ``value`` whose (k, k) kernel is shared within a group."""
    c = value.shape[-1]
    k = kernels.shape[-1]
    weight = kernels.repeat_interleave(c // groups, dim=0)[:, None]  # (C, 1, k, k)
    out = F.conv2d(value.permute(0, 3, 1, 2), weight, padding=k // 2, groups=c)
    return out.permute(0, 2, 3, 1)


def test_kernel_points_are_row_major_displacements() -> None:
    pts = kernel_points(3)
    assert pts[0].tolist() == [-1, -1] and pts[1].tolist() == [0, -1] and pts[4].tolist() == [0, 0]


def test_zero_offsets_equal_a_grouped_convolution_with_the_mask_as_kernel() -> None:
    b, h, w, c, groups, k = 2, 6, 7, 8, 2, 3
    value = _randn(b, h, w, c)
    kernels = _randn(groups, k, k, seed=1)
    mask = kernels.flatten(1).reshape(1, 1, 1, -1).expand(b, h, w, -1)  # same at every position
    offset = torch.zeros(b, h, w, groups * k * k * 2)
    out = deformable_sample(value, offset, mask, kernel=k, groups=groups, offset_scale=1.0)
    torch.testing.assert_close(out, _grouped_conv(value, kernels, groups), rtol=1e-5, atol=1e-5)


def test_unit_mask_and_zero_offsets_sum_the_neighbourhood() -> None:
    value = _randn(1, 5, 5, 4)
    out = deformable_sample(
        value, torch.zeros(1, 5, 5, 18), torch.ones(1, 5, 5, 9), kernel=3, groups=1, offset_scale=1
    )
    torch.testing.assert_close(
        out, _grouped_conv(value, torch.ones(1, 3, 3), 1), rtol=1e-5, atol=1e-5
    )


def test_integer_offset_moves_the_sampling_point() -> None:
    # a 1x1 kernel with offset (+1, 0) reads the right-hand neighbour; the last column reads zeros
    value = _randn(1, 4, 5, 2)
    offset = torch.zeros(1, 4, 5, 2)
    offset[..., 0] = 1.0
    out = deformable_sample(
        value, offset, torch.ones(1, 4, 5, 1), kernel=1, groups=1, offset_scale=1
    )
    torch.testing.assert_close(out[:, :, :-1], value[:, :, 1:])
    assert torch.equal(out[:, :, -1], torch.zeros_like(out[:, :, -1]))


def test_half_pixel_offset_interpolates_bilinearly() -> None:
    value = _randn(1, 4, 4, 3)
    offset = torch.full((1, 4, 4, 2), 0.5)  # half a pixel right and down
    out = deformable_sample(
        value, offset, torch.ones(1, 4, 4, 1), kernel=1, groups=1, offset_scale=1
    )
    expected = (value[:, :-1, :-1] + value[:, 1:, :-1] + value[:, :-1, 1:] + value[:, 1:, 1:]) / 4
    torch.testing.assert_close(out[:, :-1, :-1], expected)


def test_groups_sample_independently() -> None:
    # offsets of group 1 only: group 0's channels are unchanged
    value = _randn(1, 5, 5, 4)
    mask = torch.ones(1, 5, 5, 2)
    still = deformable_sample(
        value, torch.zeros(1, 5, 5, 4), mask, kernel=1, groups=2, offset_scale=1
    )
    offset = torch.zeros(1, 5, 5, 4)
    offset[..., 2:] = 1.0
    moved = deformable_sample(value, offset, mask, kernel=1, groups=2, offset_scale=1)
    torch.testing.assert_close(moved[..., :2], still[..., :2])
    assert not torch.allclose(moved[..., 2:], still[..., 2:])


def test_fresh_layer_averages_the_neighbourhood_uniformly() -> None:
    layer = DeformableConv(8, grid=(5, 5), groups=2, kernel=3, offset_scale=1.0)
    x = _randn(2, 5, 5, 8)
    box = _grouped_conv(layer.input_proj(x), torch.full((1, 3, 3), 1 / 9), 1)
    torch.testing.assert_close(layer(x), layer.output_proj(box), rtol=1e-5, atol=1e-5)


def test_counted_macs_equal_internimage_formula() -> None:
    op = TOKEN_MIXERS.get("deformable_conv")
    params = op.complete({"groups": 4}, "m")
    ctx = OpContext(dim=16, grid=(6, 6))
    module = DeformableConv(16, grid=(6, 6), **params)
    counted = count_macs(module, _randn(1, 6, 6, 16))
    assert counted == op.cost(ctx, params).macs
    # the sampling part is InternImage's 5 N K C on top of the dense layers
    n, d, gk = 36, 16, 4 * 9
    dense = n * (2 * d * d + d * 9 + 5 * d + 3 * d * gk)
    assert counted - dense == 5 * n * 9 * d


class _Sampler(torch.nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid, mode=self.mode, align_corners=False)


@pytest.mark.parametrize(("mode", "rate"), [("bilinear", 4), ("nearest", 0), ("bicubic", 16)])
def test_counter_prices_grid_sampling_by_interpolation_mode(mode: str, rate: int) -> None:
    x, grid = _randn(1, 3, 5, 5), torch.zeros(1, 4, 6, 2)
    assert count_macs(_Sampler(mode), (x, grid)) == rate * 3 * 4 * 6
