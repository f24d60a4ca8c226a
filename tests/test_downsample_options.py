"""Downsampler options the zoo needs: conv without bias (InternImage), pooled projection without
bias and with a norm (Next-ViT), strided MBConv (MaxViT); checked in a minimal network like the
layer contract (exact parameters, counted MACs within 2%, forward and backward)."""

from __future__ import annotations

import pytest

from search_space import Op, build_model, spec_cost
from search_space.ops import DOWNSAMPLERS, OpContext
from tests.contracts.test_layers import FEATURES, IMAGE, _check, _spec

CASES = [
    ("conv", {"kernel": 3, "norm": "layernorm", "bias": False}),
    ("conv", {"kernel": 1, "stride": 1, "norm": "batchnorm", "bias": False}),
    ("pool", {"bias": False, "norm": "batchnorm"}),
    ("mbconv", {"se_ratio": 0.0, "out_norm": True}),
    ("mbconv", {"kernel": 5, "act": "silu", "norm": "layernorm"}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("cls_token", [False, True])
@pytest.mark.parametrize("inp", [IMAGE, FEATURES], ids=["2d", "1d"])
def test_downsample_option_in_a_network(name: str, params: dict, cls_token: bool, inp) -> None:
    stem = Op.of("patch_embed", {"patch_size": 2, "cls_token": cls_token})
    _check(_spec(inp, stem, downsample=Op.of(name, params)))


def test_conv_bias_option_removes_exactly_the_bias() -> None:
    op = DOWNSAMPLERS.get("conv")
    ctx = OpContext(dim=64, grid=(56, 56), out_dim=128)
    with_bias = op.cost(ctx, op.complete({}, "d")).params
    without = op.cost(ctx, op.complete({"bias": False}, "d")).params
    assert with_bias - without == 128


def test_pool_projection_norm_only_when_the_width_changes() -> None:
    stem = Op.of("patch_embed", {"patch_size": 2})
    down = Op.of("pool", {"bias": False, "norm": "batchnorm"})
    spec = _spec(IMAGE, stem, downsample=down)
    model = build_model(spec)
    # 16 -> 24 channels: a 16 x 24 projection without bias and a 24-channel batch norm
    assert spec_cost(spec).params == sum(p.numel() for p in model.parameters())
    pool = next(m for m in model.modules() if type(m).__name__ == "PoolDownsample")
    assert pool.proj.bias is None and sum(p.numel() for p in pool.parameters()) == 16 * 24 + 48
