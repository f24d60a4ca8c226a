"""Behaviour of the conv_stack and soft_split stems beyond the layer contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from search_space.errors import SpaceError
from search_space.nn.tokenizers import ConvStack, SoftSplit, TokenPerformer, TokenTransformer
from search_space.ops import STEMS, OpContext


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _stack(out_dim: int, **params) -> tuple[dict, OpContext]:
    op = STEMS.get("conv_stack")
    full = op.complete(params, "stem")
    ctx = OpContext(dim=3, grid=(224, 224), out_dim=out_dim)
    op.check_rules(ctx, full, "stem")
    return full, ctx


def test_maxvit_stem_is_a_strided_then_a_plain_conv() -> None:
    params, ctx = _stack(
        64, widths=[64], strides=[2, 1], act="gelu", final_norm=False, final_act=False, bias=True
    )
    op = STEMS.get("conv_stack")
    assert op.out_grid(ctx, params) == (112, 112)
    # 3x3 conv 3 -> 64 with bias, BN(64), 3x3 conv 64 -> 64 with bias
    assert op.cost(ctx, params).params == (27 * 64 + 64) + 128 + (576 * 64 + 64)
    stem = ConvStack(3, 64, grid=(224, 224), **params)
    assert stem(_randn(1, 3, 224, 224)).shape == (1, 112 * 112, 64)


def test_levit_stem_doubles_widths_to_stride_sixteen() -> None:
    params, ctx = _stack(
        128,
        widths=[16, 32, 64],
        strides=[2, 2, 2, 2],
        kernels=[3, 3, 3, 3],
        act="hardswish",
        final_act=False,
    )
    op = STEMS.get("conv_stack")
    assert op.out_grid(ctx, params) == (14, 14)
    convs = [(3, 16), (16, 32), (32, 64), (64, 128)]
    assert op.cost(ctx, params).params == sum(9 * a * b + 2 * b for a, b in convs)


def test_conv_stack_lists_must_agree() -> None:
    with pytest.raises(SpaceError, match="3 strides, 2 kernels"):
        _stack(64, strides=[2, 2, 2], kernels=[3, 3], widths=[16, 32])


def test_conv_stack_without_final_norm_and_act_ends_in_the_conv() -> None:
    stem = ConvStack(
        3,
        8,
        grid=(8, 8),
        widths=(4,),
        strides=(2, 2),
        kernels=(3, 1),
        norm="batchnorm",
        act="relu",
        inner_norm=True,
        final_norm=False,
        final_act=False,
        bias=True,
        cls_token=False,
        pos_embed="none",
    )
    assert isinstance(stem.convs[-1], torch.nn.Conv2d) and stem.convs[-1].kernel_size == (1, 1)
    assert (stem(_randn(2, 3, 8, 8)) < 0).any()  # no ReLU at the end


@pytest.mark.parametrize("mixer", ["performer", "transformer"])
def test_soft_split_reduces_224_to_14_by_14_tokens(mixer: str) -> None:
    stem = SoftSplit(
        3,
        32,
        grid=(64, 64),
        token_dim=16,
        mixer=mixer,
        kernel_ratio=0.5,
        cls_token=True,
        pos_embed="sinusoidal",
    )
    assert stem(_randn(2, 3, 64, 64)).shape == (2, 1 + 4 * 4, 32)
    op = STEMS.get("soft_split")
    full = op.complete({}, "stem")
    assert op.out_grid(OpContext(dim=3, grid=(224, 224), out_dim=384), full) == (14, 14)


def test_soft_split_first_step_sees_overlapping_7x7_patches() -> None:
    # the first T2T layer's input at token (0, 1) is the 7x7 patch starting at column 4 - 2
    stem = SoftSplit(
        1,
        8,
        grid=(16, 16),
        token_dim=4,
        mixer="transformer",
        kernel_ratio=0.5,
        cls_token=False,
        pos_embed="none",
    )
    x = _randn(1, 1, 16, 16)
    patches = stem.splits[0](x).transpose(1, 2)  # (1, 16, 49)
    torch.testing.assert_close(patches[0, 1].reshape(7, 7), F.pad(x, (2, 2, 2, 2))[0, 0, :7, 4:11])


@pytest.mark.parametrize("layer_cls", [TokenPerformer, TokenTransformer])
def test_token_layers_average_values_convexly(layer_cls) -> None:
    # identical tokens: attention of any kind returns their common value v, so y = v + proj(v)
    layer = layer_cls(12, 6, 0.5) if layer_cls is TokenPerformer else layer_cls(12, 6)
    x = _randn(1, 1, 12).expand(2, 5, 12).contiguous()
    out = layer(x)
    k_q_v = layer.kqv if layer_cls is TokenPerformer else layer.qkv
    v = k_q_v(layer.norm1(x))[..., 12:]
    y = v + layer.proj(v)
    torch.testing.assert_close(out, y + layer.mlp(layer.norm2(y)), rtol=1e-4, atol=1e-5)


def test_performer_features_are_fixed_buffers_not_parameters() -> None:
    layer = TokenPerformer(12, 8, 0.5)
    assert "features" in dict(layer.named_buffers())
    assert all(p.shape != layer.features.shape for p in layer.parameters())


def test_dinat_tokenizer_has_only_the_final_layer_norm() -> None:
    # SHI-Labs ConvTokenizer: 3x3/s2 3 -> 32, 3x3/s2 32 -> 64 (biases), then LayerNorm(64)
    params, ctx = _stack(
        64,
        widths=[32],
        act="identity",
        norm="layernorm",
        inner_norm=False,
        final_act=False,
        bias=True,
    )
    op = STEMS.get("conv_stack")
    assert op.cost(ctx, params).params == (27 * 32 + 32) + (288 * 64 + 64) + 128
    stem = ConvStack(3, 64, grid=(224, 224), **params)
    kinds = [type(m).__name__ for m in stem.convs]
    assert kinds == ["Conv2d", "Identity", "Conv2d", "ChannelsFirstNorm"]
