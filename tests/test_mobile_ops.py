"""Behaviour of the mobile convolution ops (MBConv mixer and downsampler) beyond the contract
suites' shapes and costs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evaluators.counting import count_macs
from search_space.nn.mixers.additive import AdditiveTokenMixer, LocalIntegration
from search_space.nn.mixers.mbconv import MBConv, SqueezeExcite
from search_space.nn.mixers.mhca import MultiHeadConvAttention
from search_space.nn.mobile_downsample import MBConvDownsample
from search_space.ops import DOWNSAMPLERS, TOKEN_MIXERS, OpContext
from search_space.ops.token_mixers.mbconv import make_divisible

MB = {
    "expand": 4.0,
    "kernel": 3,
    "se_ratio": 0.25,
    "act": "gelu",
    "se_act": "silu",
    "norm": "batchnorm",
    "out_norm": False,
}


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(256.0, 256), (12.0, 16), (100.0, 104), (19.0, 24), (3.0, 8)],
)
def test_make_divisible_rounds_to_eight_within_ten_percent(value: float, expected: int) -> None:
    # 19 rounds to 16, which is more than 10% below 19, so it goes up to 24 (timm's rule)
    assert make_divisible(value) == expected


def test_mbconv_hidden_width_and_squeeze_width_follow_maxvit() -> None:
    module = MBConv(64, grid=(8, 8), **MB)
    expand, dw = module.body[0], module.body[3]
    assert expand.out_channels == 256 and dw.groups == 256 and expand.bias is None
    se = module.body[6]
    assert isinstance(se, SqueezeExcite)
    # MaxViT squeezes to a quarter of the block width (64), not of the expanded width (256)
    assert se.fc1.out_channels == 16
    assert module.body[-1].bias is not None


def test_squeeze_excite_gates_each_channel_by_its_mean() -> None:
    se = SqueezeExcite(2, 4, 2, "relu")
    x = _randn(2, 4, 5, 5)
    pooled = x.mean((2, 3))
    hidden = F.relu(pooled @ se.fc1.weight[:, :, 0, 0].T + se.fc1.bias)
    gate = torch.sigmoid(hidden @ se.fc2.weight[:, :, 0, 0].T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_mbconv_without_se_is_the_plain_inverted_residual() -> None:
    module = MBConv(8, grid=(5, 5), **{**MB, "se_ratio": 0.0}).eval()
    conv1, bn1, _, dw, bn2, _, conv3 = module.body
    x = _randn(2, 8, 5, 5)
    y = F.gelu(bn1(conv1(x)))
    y = F.gelu(bn2(F.conv2d(y, dw.weight, padding=1, groups=y.shape[1])))
    torch.testing.assert_close(module(x), conv3(y))


@pytest.mark.parametrize(("dim", "out_dim"), [(8, 8), (8, 16)])
def test_mbconv_downsample_shortcut_is_average_pooling(dim: int, out_dim: int) -> None:
    module = MBConvDownsample(dim, out_dim, grid=(6, 6), prefix=0, **MB)
    with torch.no_grad():  # silence the body: what is left is the pooled (and expanded) shortcut
        module.body[-1].weight.zero_()
        module.body[-1].bias.zero_()
    x = _randn(2, 36, dim)
    pooled = F.avg_pool2d(x.transpose(1, 2).reshape(2, dim, 6, 6), 2)
    if dim != out_dim:
        pooled = module.expand(pooled)
    torch.testing.assert_close(module(x), pooled.flatten(2).transpose(1, 2))


def test_mbconv_downsample_halves_odd_grids_like_its_definition() -> None:
    op = DOWNSAMPLERS.get("mbconv")
    params = op.complete({}, "ds")
    ctx = OpContext(dim=8, grid=(7, 5), out_dim=16)
    assert op.out_grid(ctx, params) == (4, 3)
    module = MBConvDownsample(8, 16, grid=(7, 5), prefix=1, **params)
    assert module(_randn(2, 1 + 35, 8)).shape == (2, 1 + 12, 16)


def test_mbconv_cost_grows_with_expansion() -> None:
    op = TOKEN_MIXERS.get("mbconv")
    ctx = OpContext(dim=64, grid=(14, 14))
    small = op.cost(ctx, op.complete({"expand": 2.0}, "m"))
    large = op.cost(ctx, op.complete({"expand": 4.0}, "m"))
    assert large.params > 1.9 * small.params and large.macs > 1.9 * small.macs


# -- CAS-ViT additive attention ------------------------------------------------------------------


def test_spatial_gate_scales_every_channel_of_a_position_alike() -> None:
    mixer = AdditiveTokenMixer(6, grid=(5, 5), kernel=3, qkv_bias=False).eval()
    q = _randn(2, 6, 5, 5) + 3.0  # keep away from zero so the ratio is well defined
    ratio = mixer.oper_q[0](q) / q
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    assert ratio.std() > 0  # positions differ


def test_channel_gate_scales_every_position_of_a_channel_alike() -> None:
    mixer = AdditiveTokenMixer(6, grid=(5, 5), kernel=3, qkv_bias=False).eval()
    q = _randn(2, 6, 5, 5) + 3.0
    ratio = mixer.oper_q[1](q) / q
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))


def test_additive_attention_is_local_apart_from_the_channel_means() -> None:
    # a far token reaches a position only through the per-channel means of q and k: with the
    # channel gates' weights zeroed those are constant and the receptive field is 3 depthwise
    # 3x3 convs wide (a 7x7 window)
    mixer = AdditiveTokenMixer(4, grid=(12, 12), kernel=3, qkv_bias=False).eval()
    with torch.no_grad():
        mixer.oper_q[1].fc.weight.zero_()
        mixer.oper_k[1].fc.weight.zero_()
    x = _randn(1, 4, 12, 12)
    far = x.clone()
    far[..., 11, 11] += 5.0
    delta = (mixer(far) - mixer(x)).abs().sum(1)[0]
    assert delta[0:5, 0:5].max() == 0 and delta[11, 11] > 0


def test_local_integration_hidden_width_rounds() -> None:
    module = LocalIntegration(10, grid=(4, 4), ratio=1.25, kernel=3, act="gelu", norm="batchnorm")
    assert module.network[0].out_channels == 12 and module.network[2].groups == 12


@pytest.mark.parametrize("grid", [(6, 6), (16,)])
@pytest.mark.parametrize("name", ["additive_attention", "local_integration", "mbconv"])
def test_counted_macs_equal_the_formula_exactly(name: str, grid: tuple[int, ...]) -> None:
    op = TOKEN_MIXERS.get(name)
    params = op.complete({}, "m")
    ctx = OpContext(dim=16, grid=grid)
    module = op.module_class()(16, grid=grid, **params)
    assert count_macs(module, _randn(1, 16, *grid)) == op.cost(ctx, params).macs


# -- Next-ViT MHCA and UniFormer's local MHRA ----------------------------------------------------


def test_mhca_heads_mix_only_their_own_channels_before_the_projection() -> None:
    mixer = MultiHeadConvAttention(8, grid=(5, 5), head_dim=4, kernel=3).eval()
    with torch.no_grad():
        mixer.projection.weight.copy_(torch.eye(8)[:, :, None, None])
    x = _randn(1, 8, 5, 5)
    bumped = x.clone()
    bumped[:, 1] += 1.0  # a channel of head 0
    delta = (mixer(bumped) - mixer(x)).abs().sum((0, 2, 3))
    assert delta[:4].sum() > 0 and delta[4:].sum() == 0


def test_mhca_parameters_follow_next_vit() -> None:
    op = TOKEN_MIXERS.get("mhca")
    cost = op.cost(OpContext(dim=96, grid=(56, 56)), op.complete({}, "m"))
    # grouped 3x3 (3 heads of 32 channels), BN, 1x1 projection; no biases
    assert cost.params == 96 * 32 * 9 + 2 * 96 + 96 * 96


def test_uniformer_local_mhra_is_a_linear_sepconv() -> None:
    # UniFormer's CBlock: conv1 1x1, depthwise 5x5, conv2 1x1, all with bias, nothing in between
    op = TOKEN_MIXERS.get("sepconv")
    params = op.complete({"expansion": 1.0, "act": "identity", "kernel": 5, "bias": True}, "m")
    d = 64
    assert op.cost(OpContext(dim=d, grid=(56, 56)), params).params == 2 * (d * d + d) + 26 * d
