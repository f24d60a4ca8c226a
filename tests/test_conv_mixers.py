"""Behaviour of the convolutional, pooling, shift, MLP, spectral and SSM mixers beyond the
contract suite's shapes and costs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from search_space.nn.channel_mixers import ConvFfn, GluMlp
from search_space.nn.mixers.conv import DwConv, LargeKernelAttention, SepConv
from search_space.nn.mixers.mlp import TokenMlp
from search_space.nn.mixers.pooling import Pooling
from search_space.nn.mixers.shift import Shift
from search_space.nn.mixers.spectral import GlobalFilter
from search_space.nn.mixers.ssm import SelectiveSSM, _SelectiveScanFn, selective_scan_reference
from search_space.ops import TOKEN_MIXERS
from search_space.ops.token_mixers.conv import lka_decomposition


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("grid", [(6, 7), (10,)])
def test_pooling_of_constant_map_is_zero(grid: tuple[int, ...]) -> None:
    # count_include_pad=False: border windows average real cells only, so zero everywhere
    x = torch.full((2, 4, *grid), 3.5)
    y = Pooling(4, grid=grid, pool_size=3)(x)
    assert torch.allclose(y, torch.zeros_like(y), atol=1e-6)


def test_pooling_is_local_average_minus_input() -> None:
    x = _randn(1, 2, 5, 5)
    y = Pooling(2, grid=(5, 5), pool_size=3)(x)
    torch.testing.assert_close(y[0, :, 2, 2], x[0, :, 1:4, 1:4].mean((-1, -2)) - x[0, :, 2, 2])


def test_shift_moves_channel_groups_2d() -> None:
    x = _randn(2, 10, 4, 5)
    y = Shift(10, grid=(4, 5), n_div=5)(x)  # groups of 2 channels
    g = 2
    left, right, up, down = (slice(i * g, (i + 1) * g) for i in range(4))
    torch.testing.assert_close(y[:, left, :, :-1], x[:, left, :, 1:])
    torch.testing.assert_close(y[:, right, :, 1:], x[:, right, :, :-1])
    torch.testing.assert_close(y[:, up, :-1, :], x[:, up, 1:, :])
    torch.testing.assert_close(y[:, down, 1:, :], x[:, down, :-1, :])
    for group, edge in (
        (left, y[:, left, :, -1]),
        (right, y[:, right, :, 0]),
        (up, y[:, up, -1, :]),
        (down, y[:, down, 0, :]),
    ):
        assert torch.equal(edge, torch.zeros_like(edge)), f"group {group} not zero filled"
    torch.testing.assert_close(y[:, 8:], x[:, 8:])


def test_shift_moves_channel_groups_1d() -> None:
    x = _randn(1, 7, 6)
    y = Shift(7, grid=(6,), n_div=3)(x)  # groups of 2: left, right, 3 channels still
    torch.testing.assert_close(y[:, 0:2, :-1], x[:, 0:2, 1:])
    torch.testing.assert_close(y[:, 2:4, 1:], x[:, 2:4, :-1])
    assert not y[:, 0:2, -1].any() and not y[:, 2:4, 0].any()
    torch.testing.assert_close(y[:, 4:], x[:, 4:])


@pytest.mark.parametrize("grid", [(8, 8), (7, 7), (6, 5), (16,), (15,)])
def test_global_filter_with_unit_filter_is_identity(grid: tuple[int, ...]) -> None:
    module = GlobalFilter(3, grid=grid)
    with torch.no_grad():
        module.complex_weight.zero_()
        module.complex_weight[..., 0] = 1.0
    x = _randn(2, 3, *grid)
    torch.testing.assert_close(module(x), x, rtol=1e-5, atol=1e-5)


def test_global_filter_is_a_circular_convolution() -> None:
    # a filter that is a pure phase ramp along W shifts the map circularly by one cell
    grid = (4, 6)
    module = GlobalFilter(1, grid=grid)
    freqs = torch.arange(grid[1] // 2 + 1)
    ramp = torch.polar(torch.ones(len(freqs)), -2 * torch.pi * freqs / grid[1])
    with torch.no_grad():
        module.complex_weight.copy_(torch.view_as_real(ramp.expand(1, grid[0], -1)))
    x = _randn(1, 1, *grid)
    torch.testing.assert_close(module(x), torch.roll(x, 1, dims=-1), rtol=1e-5, atol=1e-5)


# Mixers that are translation-equivariant away from the borders, channels-first or channels-last.
EQUIVARIANT: list[tuple[str, Any, bool]] = [
    ("dwconv", lambda grid: DwConv(4, grid=grid, kernel=5, bias=True), False),
    ("pooling", lambda grid: Pooling(4, grid=grid, pool_size=3), False),
    (
        "sepconv",
        lambda grid: SepConv(4, grid=grid, expansion=2.0, act="star_relu", kernel=3, bias=True),
        True,
    ),
    ("lka", lambda grid: LargeKernelAttention(4, grid=grid, kernel=7), False),
    (
        "conv_ffn",
        lambda grid: ConvFfn(4, grid=grid, ratio=2.0, act="gelu", kernel=3, bias=True),
        True,
    ),
]


@pytest.mark.parametrize(("name", "build", "last"), EQUIVARIANT, ids=[e[0] for e in EQUIVARIANT])
def test_translation_equivariant_in_interior(name: str, build: Any, last: bool) -> None:
    grid, shift, margin = (16, 16), (2, 3), 6  # margin > shift + kernel radius
    torch.manual_seed(0)
    module = build(grid)
    x = _randn(1, 4, *grid)
    moved = torch.roll(x, shifts=shift, dims=(-2, -1))
    if last:
        y = module(x.movedim(1, -1)).movedim(-1, 1)
        y_moved = module(moved.movedim(1, -1)).movedim(-1, 1)
    else:
        y, y_moved = module(x), module(moved)
    inner = (slice(None), slice(None), slice(margin, -margin), slice(margin, -margin))
    torch.testing.assert_close(torch.roll(y, shifts=shift, dims=(-2, -1))[inner], y_moved[inner])


def test_dwconv_is_depthwise() -> None:
    module = DwConv(3, grid=(6, 6), kernel=3, bias=False)
    x = _randn(1, 3, 6, 6)
    x2 = x.clone()
    x2[:, 1] += 1.0
    changed = (module(x2) - module(x)).abs().sum((0, 2, 3))
    assert changed[1] > 0 and changed[0] == 0 and changed[2] == 0


@pytest.mark.parametrize(
    ("kernel", "parts"), [(7, (0, 7, 1)), (14, (3, 7, 2)), (21, (5, 7, 3)), (28, (7, 7, 4))]
)
def test_lka_decomposition(kernel: int, parts: tuple[int, int, int]) -> None:
    assert lka_decomposition(kernel) == parts


@pytest.mark.parametrize("kernel", [7, 21])
def test_lka_receptive_field(kernel: int) -> None:
    local, dilated, dilation = lka_decomposition(kernel)
    radius = local // 2 + dilation * (dilated // 2)  # VAN: 2 + 9 = 11 for K = 21
    size = 2 * radius + 5
    module = LargeKernelAttention(2, grid=(size, size), kernel=kernel)
    x = _randn(1, 2, size, size).requires_grad_(True)
    center = size // 2
    module(x)[0, :, center, center].sum().backward()
    assert x.grad is not None
    reach = x.grad[0].abs().sum(0)[center]  # along the center row
    assert reach[center + radius] != 0 and reach[center - radius] != 0
    assert reach[center + radius + 1] == 0 and reach[center - radius - 1] == 0


def test_token_mlp_mixes_tokens_not_channels() -> None:
    module = TokenMlp(5, grid=(3, 4), ratio=0.5)
    x = _randn(1, 12, 5)
    x2 = x.clone()
    x2[0, 7, 2] += 1.0  # one channel of one token
    delta = (module(x2) - module(x)).abs()[0]
    assert (delta[:, 2] > 0).sum() > 1, "the change did not reach other tokens"
    assert torch.equal(delta[:, [0, 1, 3, 4]], torch.zeros(12, 4)), "channels were mixed"


def test_glu_gates_value_with_activation() -> None:
    module = GluMlp(6, grid=(4,), ratio=2.0, act="silu", bias=True)
    x = _randn(2, 4, 6)
    value, gate = F.linear(x, module.fc1.weight, module.fc1.bias).chunk(2, dim=-1)
    want = F.linear(value * F.silu(gate), module.fc2.weight, module.fc2.bias)
    torch.testing.assert_close(module(x), want)


def _ssm(bidirectional: bool) -> SelectiveSSM:
    torch.manual_seed(0)
    return SelectiveSSM(
        8, grid=(40,), state=4, expand=2, conv_kernel=4, dt_rank=0, bidirectional=bidirectional
    )


@pytest.mark.parametrize("grad", [True, False], ids=["fused", "plain"])
def test_ssm_is_causal(grad: bool) -> None:
    module = _ssm(bidirectional=False)
    x = _randn(2, 40, 8)
    x2 = x.clone()
    x2[:, 25] += 1.0
    with torch.set_grad_enabled(grad):
        delta = (module(x2) - module(x)).abs().sum((0, 2))
    assert torch.equal(delta[:25], torch.zeros(25)), "output depends on later tokens"
    assert (delta[25:] > 0).all(), "a change did not propagate forward through the state"


def test_bidirectional_ssm_sees_both_ways() -> None:
    module = _ssm(bidirectional=True)
    x = _randn(2, 40, 8)
    x2 = x.clone()
    x2[:, 25] += 1.0
    with torch.no_grad():
        delta = (module(x2) - module(x)).abs().sum((0, 2))
    assert (delta > 0).all()


def test_ssm_fused_and_plain_paths_agree() -> None:
    module = _ssm(bidirectional=True).double()
    x = _randn(2, 40, 8).double()
    y = module(x)  # grad enabled: the fused autograd.Function
    with torch.no_grad():
        torch.testing.assert_close(module(x), y)  # no grad: the plain ops the counter traces
    grads = torch.autograd.grad(y.square().sum(), list(module.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


def _scan_args(length: int, inner: int, state: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    dt = rand(2, length, inner).abs() * 0.5  # positive step sizes
    a = -rand(inner, state).abs()  # negative A: decays in (0, 1)
    args = (dt, a, rand(2, length, inner), rand(2, length, state), rand(2, length, state))
    return tuple(t.requires_grad_(True) for t in args)


def test_ssm_fused_backward_matches_autograd() -> None:
    args = _scan_args(length=33, inner=5, state=3, seed=0)
    fused = torch.autograd.grad(_SelectiveScanFn.apply(*args).sin().sum(), args)
    plain = torch.autograd.grad(selective_scan_reference(*args).sin().sum(), args)
    for f, p in zip(fused, plain, strict=True):
        torch.testing.assert_close(f, p)


def test_ssm_fused_backward_gradcheck() -> None:
    assert torch.autograd.gradcheck(
        _SelectiveScanFn.apply, _scan_args(length=20, inner=3, state=2, seed=3)
    )


def test_every_new_mixer_is_registered_with_its_family() -> None:
    families = {
        "pooling": "M11",
        "dwconv": "M15",
        "sepconv": "M15",
        "lka": "M16",
        "token_mlp": "M14",
        "global_filter": "M10",
        "selective_ssm": "M19",
        "shift": "M13",
    }
    for name, family in families.items():
        assert TOKEN_MIXERS.get(name).family == family
