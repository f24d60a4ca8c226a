"""Re-parameterisable large depthwise kernels (dwconv's ``reparam`` option): the training form
with parallel branches equals one merged large conv in eval mode."""

from __future__ import annotations

import pytest
import torch

from search_space.errors import SpaceError
from search_space.nn.large_kernel import ReparamDwConv
from search_space.nn.mixers.conv import DwConv
from search_space.ops import TOKEN_MIXERS, OpContext
from search_space.ops.large_kernel import DILATED_BRANCHES


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _randomise_norms(module: torch.nn.Module) -> None:
    # non-trivial running statistics and affine terms, so folding the norms is really tested
    gen = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen))


@pytest.mark.parametrize(
    ("grid", "params"),
    [
        ((15, 14), {"reparam": "dilated", "kernel": 13}),
        ((9, 9), {"reparam": "dilated", "kernel": 7}),
        ((20,), {"reparam": "dilated", "kernel": 11}),
        ((12, 12), {"reparam": "small", "kernel": 9, "small_kernel": 3}),
    ],
)
def test_branches_merge_into_one_large_conv(grid: tuple[int, ...], params: dict) -> None:
    module = DwConv(6, grid=grid, bias=False, **params)
    _randomise_norms(module)
    module.eval()
    assert isinstance(module.conv, ReparamDwConv)
    merged = module.conv.merged()
    x = _randn(2, 6, *grid)
    torch.testing.assert_close(merged(x), module(x), rtol=1e-4, atol=1e-4)
    assert merged.kernel_size == (params["kernel"],) * len(grid)


def test_dilated_branches_fit_inside_their_large_kernel() -> None:
    for kernel, branches in DILATED_BRANCHES.items():
        for k, r in branches:
            assert r * (k - 1) + 1 <= kernel, (kernel, k, r)


def test_unireplknet_13_has_five_branches_with_their_norms() -> None:
    op = TOKEN_MIXERS.get("dwconv")
    params = op.complete({"kernel": 13, "bias": False, "reparam": "dilated"}, "m")
    d = 64
    cost = op.cost(OpContext(dim=d, grid=(14, 14)), params)
    kernels = [13, 5, 7, 3, 3, 3]
    assert cost.params == sum(d * k * k + 2 * d for k in kernels)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kernel": 13, "reparam": "dilated"}, "set bias=false"),
        ({"kernel": 19, "bias": False, "reparam": "dilated"}, "needs kernel in"),
        ({"kernel": 7, "bias": False, "reparam": "small", "small_kernel": 7}, "below kernel=7"),
    ],
)
def test_bad_reparam_settings_are_named(params: dict, message: str) -> None:
    op = TOKEN_MIXERS.get("dwconv")
    with pytest.raises(SpaceError, match=message):
        op.check_rules(OpContext(dim=8, grid=(8, 8)), op.complete(params, "m"), "m")
