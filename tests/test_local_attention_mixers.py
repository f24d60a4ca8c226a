"""Behaviour of the neighbourhood, grid, routing and HiLo attention mixers beyond shapes and costs.

The contract suite checks shapes, parameter counts and MACs; these tests check what each mixer
computes, against dense softmax attention with an explicit mask built independently here, or
against global attention (`Attention`) carrying the same weights.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from search_space.nn.mixers.attention import Attention, WindowAttention
from search_space.nn.mixers.grid import GridAttention, grid_partition, grid_reverse
from search_space.nn.mixers.hilo import HiLoAttention
from search_space.nn.mixers.neighborhood import NeighborhoodAttention, neighborhood_index
from search_space.nn.mixers.routing import RoutingAttention
from search_space.ops.token_mixers.local_attention import (
    grid_geometry,
    neighborhood_geometry,
    region_geometry,
)

DIM, HEAD_DIM = 32, 8
HEADS = DIM // HEAD_DIM


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _dense_attention(
    module: torch.nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    bias: torch.Tensor | None,
    extra: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax attention over all grid tokens with ``module``'s qkv/proj, an allowed-key mask
    ``(N, N)`` (or ``(B, N, N)``) and an additive bias ``(heads, N, N)``, written out without
    SDPA; ``extra`` (B, N, C) is added before the output projection."""
    b, c, n = x.shape[0], x.shape[-1], mask.shape[-1]
    qkv = module.qkv(x.reshape(b, n, c)).reshape(b, n, 3, HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)
    scores = qkv[0] @ qkv[1].transpose(-1, -2) / math.sqrt(HEAD_DIM)
    if bias is not None:
        scores = scores + bias
    mask = mask if mask.dim() == 2 else mask[:, None]
    scores = scores.masked_fill(~mask, float("-inf"))
    y = (scores.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(b, n, c)
    if extra is not None:
        y = y + extra
    return module.proj(y).reshape(x.shape)


def _global_twin(module: torch.nn.Module) -> Attention:
    twin = Attention(DIM, grid=(1,), head_dim=HEAD_DIM, qkv_bias=True).double()
    twin.qkv.load_state_dict(module.qkv.state_dict())
    twin.proj.load_state_dict(module.proj.state_dict())
    return twin.eval()


# -- neighbourhood attention -------------------------------------------------------------------


def _natten_window_start(index: int, length: int, kernel: int, dilation: int) -> int:
    """NATTEN's window start (its CUDA/CPU kernels' ``get_window_start``), transcribed."""
    nh = kernel // 2
    if dilation <= 1:
        return max(index - nh, 0) + (index + nh >= length) * (length - index - nh - 1)
    if index - nh * dilation < 0:
        return index % dilation
    if index + nh * dilation >= length:
        imodd = index % dilation
        a = (length // dilation) * dilation
        b = length - a
        if imodd < b:
            return length - b + imodd - 2 * nh * dilation
        return a + imodd - kernel * dilation
    return index - nh * dilation


def _natten_bias_start(index: int, length: int, kernel: int, dilation: int) -> int:
    """NATTEN's first relative-position-bias row of a query (``get_pb_start``), transcribed."""
    nh = kernel // 2
    if dilation <= 1:
        return nh + (index < nh) * (nh - index) + (index + nh >= length) * (length - index - 1 - nh)
    if index - nh * dilation < 0:
        return kernel - 1 - index // dilation
    if index + nh * dilation >= length:
        return (length - index - 1) // dilation
    return nh


@pytest.mark.parametrize(
    ("size", "kernel", "dilation"),
    [(9, 3, 1), (10, 3, 3), (11, 3, 3), (16, 5, 3), (14, 7, 2), (56, 7, 8), (7, 7, 1), (13, 5, 2)],
)
def test_neighbourhood_matches_natten_windows_and_bias_rows(
    size: int, kernel: int, dilation: int
) -> None:
    keys, rows = neighborhood_index((size,), (kernel,), (dilation,), kernel)
    for i in range(size):
        start = _natten_window_start(i, size, kernel, dilation)
        bias_start = _natten_bias_start(i, size, kernel, dilation)
        assert keys[i].tolist() == [start + j * dilation for j in range(kernel)]
        assert rows[i].tolist() == [bias_start + j for j in range(kernel)]


def test_neighbourhood_geometry_clips_kernel_then_dilation() -> None:
    assert neighborhood_geometry((56, 56), 7, 8) == ((7, 7), (8, 8))
    assert neighborhood_geometry((7, 7), 7, 2) == ((7, 7), (1, 1))
    assert neighborhood_geometry((5, 20), 7, 2) == ((5, 7), (1, 2))
    assert neighborhood_geometry((16,), 3, 8) == ((3,), (5,))


def _neighbourhood(grid: tuple[int, ...], kernel: int, dilation: int, rpb: bool = True):
    torch.manual_seed(0)
    module = NeighborhoodAttention(
        DIM,
        grid=grid,
        kernel=kernel,
        dilation=dilation,
        head_dim=HEAD_DIM,
        qkv_bias=True,
        rel_pos_bias=rpb,
    )
    return module.double().eval()


@pytest.mark.parametrize(
    ("grid", "kernel", "dilation"),
    [((9, 10), 3, 1), ((12, 11), 3, 3), ((7, 7), 5, 2), ((20,), 5, 3), ((6, 9), 7, 1)],
)
def test_neighbourhood_equals_masked_global_attention_with_natten_bias(
    grid: tuple[int, ...], kernel: int, dilation: int
) -> None:
    module = _neighbourhood(grid, kernel, dilation)
    kernels, dilations = neighborhood_geometry(grid, kernel, dilation)
    # reference mask and bias from NATTEN's per-axis formulas, product over axes
    n = math.prod(grid)
    mask = torch.zeros(n, n, dtype=torch.bool)
    bias = torch.zeros(HEADS, n, n, dtype=torch.float64)
    table = module.rpb.detach()
    coords = list(itertools.product(*map(range, grid)))
    for qi, q in enumerate(coords):
        axes = []
        for a, (pos, size) in enumerate(zip(q, grid, strict=True)):
            k, d = kernels[a], dilations[a]
            if k < kernel:  # clipped to the axis: every position, offsets into the full table
                axes.append([(j, j - pos + kernel - 1) for j in range(size)])
                continue
            start = _natten_window_start(pos, size, k, d)
            brow = _natten_bias_start(pos, size, k, d)
            axes.append([(start + j * d, brow + j) for j in range(k)])
        for combo in itertools.product(*axes):
            ki = 0
            for (key, _), size in zip(combo, grid, strict=True):
                ki = ki * size + key
            mask[qi, ki] = True
            bias[:, qi, ki] = table[(slice(None), *(row for _, row in combo))]
    x = _randn(2, *grid, DIM)
    with torch.no_grad():
        expected = _dense_attention(module, x, mask, bias)
        torch.testing.assert_close(module(x), expected)


def test_neighbourhood_with_kernel_spanning_the_grid_is_global_attention() -> None:
    module = _neighbourhood((7, 7), 7, 1, rpb=False)
    x = _randn(2, 7, 7, DIM)
    with torch.no_grad():
        expected = _global_twin(module)(x.reshape(2, 49, DIM)).reshape(x.shape)
        torch.testing.assert_close(module(x), expected)


def test_neighbourhood_is_local() -> None:
    """A change at one corner moves only the outputs whose neighbourhood holds that corner."""
    module = _neighbourhood((12, 12), 3, 1, rpb=False)
    x = _randn(1, 12, 12, DIM)
    y = x.clone()
    y[0, 0, 0] += 1.0
    with torch.no_grad():
        changed = (module(x) - module(y)).abs().sum(-1)[0] > 1e-12
    # the corner is a key of the 2x2 queries nearest it only (window shifted inwards at borders)
    assert changed.nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


# -- bi-level routing attention ----------------------------------------------------------------


def _routing(grid: tuple[int, ...], n_win: int, topk: int, lepe: int = 3) -> RoutingAttention:
    torch.manual_seed(0)
    module = RoutingAttention(
        DIM,
        grid=grid,
        n_win=n_win,
        topk=topk,
        head_dim=HEAD_DIM,
        qkv_bias=True,
        lepe_kernel=lepe,
    )
    return module.double().eval()


def _lepe_of_v(module: RoutingAttention, x: torch.Tensor) -> torch.Tensor:
    v = module.qkv(x)[..., 2 * DIM :]
    return module.lepe(v.movedim(-1, 1)).movedim(1, -1).reshape(x.shape[0], -1, DIM)


def test_region_geometry_keeps_every_region_partly_real() -> None:
    geo = region_geometry((56, 56), 7, 4)
    assert geo.sizes == (8, 8) and geo.regions == (7, 7) and geo.padded == (56, 56)
    # 8 rows in 7 regions would need side 2 and leave 3 regions of pure padding: 4 regions
    geo = region_geometry((8, 7), 7, 100)
    assert geo.sizes == (2, 1) and geo.regions == (4, 7) and geo.padded == (8, 7)
    assert geo.topk == 28


@pytest.mark.parametrize(("grid", "n_win"), [((8, 8), 4), ((7, 7), 7), ((12,), 3)])
def test_routing_to_every_region_is_global_attention_plus_lepe(
    grid: tuple[int, ...], n_win: int
) -> None:
    module = _routing(grid, n_win, topk=10_000)
    x = _randn(2, *grid, DIM)
    n = math.prod(grid)
    with torch.no_grad():
        mask = torch.ones(n, n, dtype=torch.bool)
        expected = _dense_attention(module, x, mask, None, extra=_lepe_of_v(module, x))
        torch.testing.assert_close(module(x), expected)


@pytest.mark.parametrize(
    ("grid", "n_win", "topk"), [((8, 8), 4, 3), ((7, 9), 3, 2), ((10,), 4, 1), ((9, 9), 2, 1)]
)
def test_routing_attends_the_topk_regions_by_mean_query_key_affinity(
    grid: tuple[int, ...], n_win: int, topk: int
) -> None:
    module = _routing(grid, n_win, topk)
    geo = region_geometry(grid, n_win, topk)
    x = _randn(3, *grid, DIM)
    coords = list(itertools.product(*map(range, grid)))
    region = torch.tensor(
        [
            sum(
                (p // s) * math.prod(geo.regions[a + 1 :])
                for a, (p, s) in enumerate(zip(c, geo.sizes, strict=True))
            )
            for c in coords
        ]
    )
    with torch.no_grad():
        q, k, _ = module.qkv(x.reshape(3, -1, DIM)).chunk(3, dim=-1)
        member = torch.nn.functional.one_hot(region, geo.count).double()  # (N, R)
        q_mean = member.T @ q / member.sum(0)[:, None]
        k_mean = member.T @ k / member.sum(0)[:, None]
        chosen = (q_mean @ k_mean.transpose(-1, -2)).topk(geo.topk, dim=-1).indices  # (B, R, k)
        routed = torch.zeros(3, geo.count, geo.count, dtype=torch.bool)
        routed.scatter_(2, chosen, True)
        mask = routed[:, region][:, :, region]  # query's region routes to key's region
        expected = _dense_attention(module, x, mask, None, extra=_lepe_of_v(module, x))
        torch.testing.assert_close(module(x), expected)
        # sparse when k < R: some query ignores some key
        assert not mask.all()


# -- grid attention ----------------------------------------------------------------------------


def _grid_attention(grid: tuple[int, ...], grid_size: int, rpb: bool = True) -> GridAttention:
    torch.manual_seed(0)
    module = GridAttention(
        DIM, grid=grid, grid_size=grid_size, head_dim=HEAD_DIM, qkv_bias=True, rel_pos_bias=rpb
    )
    return module.double().eval()


def test_grid_partition_matches_maxvit_layout_and_round_trips() -> None:
    x = _randn(2, 6, 8, 3)
    win = grid_partition(x, (3, 2), (2, 4))
    # timm's grid_partition: view(B, G, H/G, G, W/G, C).permute(0, 2, 4, 1, 3, 5)
    expected = x.view(2, 3, 2, 2, 4, 3).permute(0, 2, 4, 1, 3, 5).reshape(2, 8, 6, 3)
    torch.testing.assert_close(win, expected)
    torch.testing.assert_close(grid_reverse(win, (3, 2), (2, 4)), x)


@pytest.mark.parametrize(("grid", "grid_size"), [((8, 8), 4), ((7, 9), 3), ((10,), 4), ((6, 5), 2)])
def test_grid_attention_mixes_tokens_one_cell_apart_with_cell_offset_bias(
    grid: tuple[int, ...], grid_size: int
) -> None:
    module = _grid_attention(grid, grid_size)
    geo = grid_geometry(grid, grid_size)
    n = math.prod(grid)
    coords = list(itertools.product(*map(range, grid)))
    mask = torch.zeros(n, n, dtype=torch.bool)
    bias = torch.zeros(HEADS, n, n, dtype=torch.float64)
    table = module.rel_pos_table.detach()
    for i, p in enumerate(coords):
        for j, q in enumerate(coords):
            if all(a % s == b % s for a, b, s in zip(p, q, geo.strides, strict=True)):
                mask[i, j] = True
                row = 0
                for a, b, s, g in zip(p, q, geo.strides, geo.cells, strict=True):
                    row = row * (2 * g - 1) + (a // s - b // s + g - 1)
                bias[:, i, j] = table[row]
    x = _randn(2, *grid, DIM)
    with torch.no_grad():
        torch.testing.assert_close(module(x), _dense_attention(module, x, mask, bias))


def test_grid_attention_spanning_the_grid_is_global_attention() -> None:
    module = _grid_attention((5, 5), 7, rpb=False)
    x = _randn(2, 5, 5, DIM)
    with torch.no_grad():
        expected = _global_twin(module)(x.reshape(2, 25, DIM)).reshape(x.shape)
        torch.testing.assert_close(module(x), expected)


def test_window_attention_has_maxvit_block_attention_parameters() -> None:
    """MaxViT-T block attention (timm maxvit_tiny_tf_224, stage 1): dim 64, head_dim 32,
    7x7 windows, qkv and proj with bias, a (2*7-1)^2 x heads bias table."""
    from search_space.ops import TOKEN_MIXERS, OpContext

    ctx = OpContext(dim=64, grid=(56, 56))
    maxvit = 64 * 192 + 192 + 64 * 64 + 64 + 13 * 13 * 2
    params = {"window": 7, "head_dim": 32, "shift": False, "qkv_bias": True, "rel_pos_bias": True}
    assert TOKEN_MIXERS.get("window_attention").cost(ctx, params).params == maxvit
    grid_params = {"grid_size": 7, "head_dim": 32, "qkv_bias": True, "rel_pos_bias": True}
    assert TOKEN_MIXERS.get("grid_attention").cost(ctx, grid_params).params == maxvit


# -- HiLo attention ----------------------------------------------------------------------------


def _hilo(grid: tuple[int, ...], alpha: float, window: int) -> HiLoAttention:
    torch.manual_seed(0)
    module = HiLoAttention(
        DIM, grid=grid, head_dim=HEAD_DIM, alpha=alpha, window=window, qkv_bias=True
    )
    return module.double().eval()


def test_hilo_splits_heads_like_litv2() -> None:
    from search_space.ops.token_mixers.local_attention import hilo_heads

    assert hilo_heads(12, 0.9, 2) == (10, 2)  # LITv2-S stage 3
    assert hilo_heads(24, 0.9, 1) == (24, 0)  # stage 4: window 1 is all Lo-Fi
    assert hilo_heads(4, 0.0, 2) == (0, 4)


@pytest.mark.parametrize(("grid", "window"), [((7, 7), 3), ((8, 8), 2), ((9,), 4)])
def test_hilo_with_only_hifi_heads_is_window_attention(grid: tuple[int, ...], window: int) -> None:
    module = _hilo(grid, 0.0, window)
    twin = WindowAttention(
        DIM,
        grid=grid,
        window=window,
        head_dim=HEAD_DIM,
        shift=False,
        qkv_bias=True,
        rel_pos_bias=False,
    ).double()
    twin.qkv.load_state_dict(module.h_qkv.state_dict())
    twin.proj.load_state_dict(module.h_proj.state_dict())
    x = _randn(2, *grid, DIM)
    with torch.no_grad():
        torch.testing.assert_close(module(x), twin.eval()(x))


def test_hilo_with_window_one_is_global_attention() -> None:
    module = _hilo((6, 5), 0.5, 1)
    twin = Attention(DIM, grid=(1,), head_dim=HEAD_DIM, qkv_bias=True).double()
    twin.qkv.weight.data = torch.cat([module.l_q.weight, module.l_kv.weight]).detach()
    twin.qkv.bias.data = torch.cat([module.l_q.bias, module.l_kv.bias]).detach()
    twin.proj.load_state_dict(module.l_proj.state_dict())
    x = _randn(2, 6, 5, DIM)
    with torch.no_grad():
        torch.testing.assert_close(module(x), twin.eval()(x.reshape(2, 30, DIM)).reshape(x.shape))


def test_hilo_lofi_heads_attend_means_of_every_window_including_partial_ones() -> None:
    module = _hilo((7, 5), 1.0, 2)
    x = _randn(2, 7, 5, DIM)
    # pooled keys: the mean of each 2x2 window, the last row/column of windows partial
    pooled = torch.stack(
        [
            x[:, i : i + 2, j : j + 2].mean(dim=(1, 2))
            for i in range(0, 7, 2)
            for j in range(0, 5, 2)
        ],
        dim=1,
    )
    with torch.no_grad():
        q = module.l_q(x.reshape(2, 35, DIM)).reshape(2, 35, HEADS, HEAD_DIM).transpose(1, 2)
        kv = module.l_kv(pooled).reshape(2, 12, 2, HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)
        scores = (q @ kv[0].transpose(-1, -2) / math.sqrt(HEAD_DIM)).softmax(-1)
        y = (scores @ kv[1]).transpose(1, 2).reshape(2, 7, 5, DIM)
        torch.testing.assert_close(module(x), module.l_proj(y))


def test_hilo_hifi_channels_are_local_and_lofi_channels_global() -> None:
    module = _hilo((8, 8), 0.5, 2)
    x = _randn(1, 8, 8, DIM)
    y = x.clone()
    y[0, 0, 0] += 1.0
    with torch.no_grad():
        delta = (module(x) - module(y))[0, 6, 6].abs()
    assert delta[: module.h_dim].max() == 0  # Hi-Fi output first, its window far from (0, 0)
    assert delta[module.h_dim :].max() > 1e-6
