"""Behaviour of the gated convolution mixers (HorNet's g^n Conv, MambaOut's Gated CNN) beyond the
contract suite's shapes and costs."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from search_space.errors import SpaceError
from search_space.nn.mixers.gated_cnn import GatedCnn
from search_space.nn.mixers.gnconv import GlobalLocalFilter, GnConv
from search_space.ops import TOKEN_MIXERS, OpContext
from search_space.ops.token_mixers.gnconv import gnconv_dims


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _dw(x: torch.Tensor, conv: torch.nn.Module) -> torch.Tensor:
    k = conv.weight.shape[-1]
    return F.conv2d(x, conv.weight, conv.bias, padding=k // 2, groups=x.shape[1])


def test_order_widths_halve_towards_the_first_order() -> None:
    assert gnconv_dims(64, 1) == [64]
    assert gnconv_dims(64, 4) == [8, 16, 32, 64]


def test_order_one_is_a_gated_convolution() -> None:
    module = GnConv(6, grid=(5, 5), order=1, kernel=3, scale=0.5, filter="dwconv")
    x = _randn(2, 6, 5, 5)
    value, gate_in = module.proj_in(x).split(6, dim=1)
    expected = module.proj_out(value * 0.5 * _dw(gate_in, module.dwconv))
    torch.testing.assert_close(module(x), expected)


def test_order_three_recursion_matches_the_paper() -> None:
    module = GnConv(8, grid=(4, 6), order=3, kernel=5, scale=1 / 3, filter="dwconv")
    x = _randn(2, 8, 4, 6, seed=1)
    p0, q = module.proj_in(x).split([2, 14], dim=1)
    g0, g1, g2 = (_dw(q, module.dwconv) / 3).split([2, 4, 8], dim=1)
    p1 = module.pws[0](p0 * g0) * g1
    p2 = module.pws[1](p1) * g2
    torch.testing.assert_close(module(x), module.proj_out(p2), rtol=1e-5, atol=1e-6)


def test_global_local_filter_interleaves_local_and_spectral_halves() -> None:
    module = GlobalLocalFilter(4, grid=(6, 6), kernel=3)
    with torch.no_grad():  # identity depthwise kernel and unit filter: both halves pass through
        module.dw.weight.zero_()
        module.dw.weight[..., 1, 1] = 1.0
        module.spectral.complex_weight.zero_()
        module.spectral.complex_weight[..., 0] = 1.0
    x = _randn(2, 4, 6, 6)

    def layer_norm(t: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(t.movedim(1, -1), (4,), eps=1e-6).movedim(-1, 1)

    normed = layer_norm(x)
    interleaved = normed[:, [0, 2, 1, 3]]  # local 0, spectral 0, local 1, spectral 1
    torch.testing.assert_close(module(x), layer_norm(interleaved), rtol=1e-4, atol=1e-5)


def test_width_must_carry_the_order() -> None:
    op = TOKEN_MIXERS.get("gnconv")
    with pytest.raises(SpaceError, match="multiple of 16"):
        op.check_rules(OpContext(dim=24, grid=(7, 7)), op.complete({"order": 5}, "m"), "m")
    with pytest.raises(SpaceError, match="multiple of 4"):
        op.check_rules(
            OpContext(dim=6, grid=(7, 7)), op.complete({"order": 2, "filter": "global"}, "m"), "m"
        )


def test_hornet_t_stage_three_block_parameters() -> None:
    # gnconv of order 4 at width 256 (HorNet-T stage 3), counted by hand from the official layers
    op = TOKEN_MIXERS.get("gnconv")
    cost = op.cost(OpContext(dim=256, grid=(14, 14)), op.complete({"order": 4}, "m"))
    dims = [32, 64, 128, 256]
    spread = sum(dims)
    expected = (256 * 512 + 512) + spread * 50 + (256 * 256 + 256)
    expected += sum(a * b + b for a, b in itertools.pairwise(dims))
    module = GnConv(256, grid=(14, 14), order=4, kernel=7, scale=1 / 3, filter="dwconv")
    assert cost.params == expected == sum(p.numel() for p in module.parameters())


# -- MambaOut's Gated CNN --------------------------------------------------------------------------


def test_gated_cnn_convolves_only_the_conv_part_inside_the_gate() -> None:
    module = GatedCnn(6, grid=(5, 5), ratio=2.0, kernel=3, conv_ratio=0.5, act="gelu")
    x = _randn(2, 5, 5, 6)
    g, i, c = module.fc1(x).split([12, 9, 3], dim=-1)
    conv = module.conv
    c = F.conv2d(c.permute(0, 3, 1, 2), conv.weight, conv.bias, padding=1, groups=3)
    expected = module.fc2(F.gelu(g) * torch.cat([i, c.permute(0, 2, 3, 1)], dim=-1))
    torch.testing.assert_close(module(x), expected)


def test_gated_cnn_reach_is_the_conv_kernel() -> None:
    # a token far outside the 3x3 window does not change the output at the origin
    module = GatedCnn(4, grid=(6, 6), ratio=2.0, kernel=3, conv_ratio=1.0, act="gelu")
    x = _randn(1, 6, 6, 4)
    far = x.clone()
    far[0, 5, 5] += 3.0
    torch.testing.assert_close(module(far)[0, :3, :3], module(x)[0, :3, :3])


def test_mambaout_t_block_parameters() -> None:
    # timm mambaout_tiny stage 1: width 96, hidden int(8/3 * 96) = 256, 7x7 conv on 96 channels
    op = TOKEN_MIXERS.get("gated_cnn")
    cost = op.cost(OpContext(dim=96, grid=(56, 56)), op.complete({}, "m"))
    assert cost.params == (96 * 512 + 512) + (96 * 49 + 96) + (256 * 96 + 96)


def test_gated_cnn_conv_channels_must_fit_the_hidden_width() -> None:
    op = TOKEN_MIXERS.get("gated_cnn")
    with pytest.raises(SpaceError, match="conv channels"):
        op.check_rules(
            OpContext(dim=8, grid=(4, 4)), op.complete({"ratio": 1.0, "conv_ratio": 1.5}, "m"), "m"
        )
