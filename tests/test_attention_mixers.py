"""Behaviour of the window, spatial-reduction and linear attention mixers beyond shapes and costs.

The contract suite checks shapes, parameter counts and MACs; these tests check what each mixer
computes, against global attention (`Attention`) with the same weights or an explicit reference.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from search_space.nn.mixers.attention import (
    Attention,
    LinearAttention,
    SRAttention,
    WindowAttention,
)
from search_space.nn.mixers.windows import (
    relative_position_index,
    window_partition,
    window_reverse,
)
from search_space.ops.token_mixers.attention import window_geometry

DIM, HEAD_DIM = 32, 8


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _window_attention(
    grid: tuple[int, ...], window: int, shift: bool, **kw: bool
) -> WindowAttention:
    torch.manual_seed(0)
    params = {"qkv_bias": True, "rel_pos_bias": False, **kw}
    module = WindowAttention(
        DIM, grid=grid, window=window, head_dim=HEAD_DIM, shift=shift, **params
    )
    return module.double().eval()


def _global_twin(module: torch.nn.Module) -> Attention:
    """Global attention carrying ``module``'s qkv and output projections."""
    twin = Attention(DIM, grid=(1,), head_dim=HEAD_DIM, qkv_bias=True).double()
    twin.load_state_dict(module.state_dict())
    return twin.eval()


def _axis_blocks(size: int, window: int, shift: int, padded: int) -> list[range]:
    """Contiguous ranges of one axis that attend among themselves (Swin partition after masking):
    a shift by s cuts the padded axis at s, s + w, ..., and padding is never attended."""
    starts = [0, *range(shift, padded, window)] if shift else list(range(0, padded, window))
    ends = [*starts[1:], padded]
    blocks = [range(a, min(b, size)) for a, b in zip(starts, ends, strict=True)]
    return [blk for blk in blocks if len(blk)]


# -- geometry and helpers --------------------------------------------------------------------------


def test_window_geometry_clips_windows_and_shifts_to_the_grid() -> None:
    geo = window_geometry((3, 8), 4, shift=True)
    assert geo.windows == (3, 4) and geo.shifts == (0, 2) and geo.padded == (3, 8)
    geo = window_geometry((7, 7), 3, shift=True)
    assert geo.windows == (3, 3) and geo.shifts == (1, 1) and geo.padded == (9, 9)
    assert geo.count == 9 and geo.tokens == 9
    # a window exactly the axis' size spans it: nothing to shift against
    assert window_geometry((8,), 8, shift=True).shifts == (0,)


@pytest.mark.parametrize(("grid", "windows"), [((8, 12), (4, 3)), ((12,), (4,)), ((6, 6), (6, 2))])
def test_window_partition_round_trips_and_groups_neighbours(
    grid: tuple[int, ...], windows: tuple[int, ...]
) -> None:
    coords = torch.stack(torch.meshgrid(*map(torch.arange, grid), indexing="ij"), dim=-1)
    parts = window_partition(coords[None], windows)
    assert parts.shape == (1, math.prod(grid) // math.prod(windows), math.prod(windows), len(grid))
    assert torch.equal(window_reverse(parts, windows, grid), coords[None])
    # every window holds one block of the grid: coordinates // window agree inside a window
    block = parts[0] // torch.tensor(windows)
    assert (block == block[:, :1]).all()


@pytest.mark.parametrize("windows", [(3, 4), (5,), (2, 2)])
def test_relative_position_index_depends_only_on_offset(windows: tuple[int, ...]) -> None:
    index = relative_position_index(windows)
    coords = list(itertools.product(*map(range, windows)))
    seen: dict[tuple[int, ...], int] = {}
    for (i, a), (j, b) in itertools.product(enumerate(coords), repeat=2):
        offset = tuple(x - y for x, y in zip(a, b, strict=True))
        assert seen.setdefault(offset, int(index[i, j])) == int(index[i, j])
    # distinct offsets get distinct rows, and the table is exactly prod(2w - 1) rows
    assert len(set(seen.values())) == len(seen) == math.prod(2 * w - 1 for w in windows)
    assert int(index.min()) == 0 and int(index.max()) == len(seen) - 1


# -- window attention ------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", [(8, 8), (5, 7), (16,)])
@pytest.mark.parametrize("shift", [False, True])
def test_window_covering_the_grid_is_global_attention(grid: tuple[int, ...], shift: bool) -> None:
    module = _window_attention(grid, window=16, shift=shift)
    x = _randn(2, *grid, DIM)
    expected = _global_twin(module)(x.reshape(2, -1, DIM)).reshape(x.shape)
    torch.testing.assert_close(module(x), expected)


@pytest.mark.parametrize(
    ("grid", "window", "shift"),
    [
        ((8, 8), 4, False),
        ((8, 8), 4, True),
        ((7, 7), 3, False),  # padded to 9x9
        ((7, 7), 3, True),
        ((7, 7), 4, True),  # padded to 8x8, padding inside the wrapped window
        ((6, 9), 4, True),  # non-square, padded to 8x12
        ((3, 8), 4, True),  # window clipped to 3 on the first axis: shifted only on the second
        ((16,), 4, True),
        ((7,), 3, True),
        ((5,), 4, True),  # a wrapped region of padding only
    ],
)
def test_window_attention_matches_blockwise_global_attention(
    grid: tuple[int, ...], window: int, shift: bool
) -> None:
    """Padding masks and the Swin shift mask together: each token attends exactly to its block."""
    module = _window_attention(grid, window, shift)
    twin = _global_twin(module)
    x = _randn(2, *grid, DIM, seed=1)
    y = module(x)
    geo = window_geometry(grid, window, shift)
    axes = [
        _axis_blocks(g, w, s, p)
        for g, w, s, p in zip(grid, geo.windows, geo.shifts, geo.padded, strict=True)
    ]
    for block in itertools.product(*axes):
        index = torch.meshgrid(*(torch.tensor(list(r)) for r in block), indexing="ij")
        tokens = x[(slice(None), *index)]
        expected = twin(tokens.reshape(2, -1, DIM)).reshape(tokens.shape)
        torch.testing.assert_close(y[(slice(None), *index)], expected)


def test_tokens_do_not_cross_unshifted_windows() -> None:
    grid = (8, 8)
    x = _randn(1, *grid, DIM).requires_grad_(True)
    _window_attention(grid, window=4, shift=False, rel_pos_bias=True)(x)[0, 1, 2].sum().backward()
    assert x.grad is not None
    touched = x.grad[0].abs().sum(-1) > 0
    outside = torch.ones(grid, dtype=torch.bool)
    outside[:4, :4] = False
    assert touched[:4, :4].all() and not touched[outside].any()


def test_shifted_windows_connect_neighbouring_windows() -> None:
    grid = (8, 8)
    plain = _window_attention(grid, window=4, shift=False, rel_pos_bias=True)
    shifted = _window_attention(grid, window=4, shift=True, rel_pos_bias=True)
    shifted.load_state_dict(plain.state_dict())
    x = _randn(1, *grid, DIM).requires_grad_(True)
    assert not torch.allclose(plain(x), shifted(x))
    # token (3, 3) sits in shifted window rows/cols 2..5, which spans four unshifted windows
    shifted(x)[0, 3, 3].sum().backward()
    assert x.grad is not None
    touched = x.grad[0].abs().sum(-1) > 0
    assert touched[2:6, 2:6].all() and int(touched.sum()) == 16


def test_relative_position_bias_enters_the_scores() -> None:
    grid = (6, 6)
    biased = _window_attention(grid, window=3, shift=True, rel_pos_bias=True)
    plain = _window_attention(grid, window=3, shift=True, rel_pos_bias=False)
    plain.load_state_dict(biased.state_dict(), strict=False)
    x = _randn(2, *grid, DIM)
    assert biased.rel_pos_table is not None
    assert biased.rel_pos_table.shape == (5 * 5, DIM // HEAD_DIM)
    assert not torch.allclose(biased(x), plain(x))
    with torch.no_grad():
        biased.rel_pos_table.zero_()
    torch.testing.assert_close(biased(x), plain(x))


# -- spatial-reduction attention -------------------------------------------------------------------


@pytest.mark.parametrize("grid", [(8, 8), (7, 5), (16,)])
def test_sr_ratio_one_is_global_attention(grid: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    module = SRAttention(DIM, grid=grid, sr_ratio=1, head_dim=HEAD_DIM, qkv_bias=True).double()
    twin = Attention(DIM, grid=grid, head_dim=HEAD_DIM, qkv_bias=True).double()
    state = module.state_dict()
    # Attention's qkv rows are [q; k; v], SRAttention's kv rows are [k; v]
    twin.load_state_dict(
        {
            "qkv.weight": torch.cat([state["q.weight"], state["kv.weight"]]),
            "qkv.bias": torch.cat([state["q.bias"], state["kv.bias"]]),
            "proj.weight": state["proj.weight"],
            "proj.bias": state["proj.bias"],
        }
    )
    x = _randn(2, *grid, DIM)
    expected = twin(x.reshape(2, -1, DIM)).reshape(x.shape)
    torch.testing.assert_close(module(x), expected)


def test_sr_attention_keys_come_from_the_reduced_grid() -> None:
    """On 7x7 with R=2 the unpadded reduction conv covers rows/cols 0..5 only (as in PVT): the
    last row and column still query but are no keys, while every covered token reaches every
    output."""
    torch.manual_seed(0)
    module = SRAttention(DIM, grid=(7, 7), sr_ratio=2, head_dim=HEAD_DIM, qkv_bias=True).double()
    x = _randn(1, 7, 7, DIM).requires_grad_(True)
    module(x)[0, 0, 0].sum().backward()
    assert x.grad is not None
    touched = x.grad[0].abs().sum(-1) > 0
    assert touched[:6, :6].all()
    assert not touched[6, 1:].any() and not touched[1:, 6].any()


def test_sr_attention_reduces_keys_by_the_ratio() -> None:
    module = SRAttention(DIM, grid=(8, 8), sr_ratio=4, head_dim=HEAD_DIM, qkv_bias=True)
    seen: list[torch.Size] = []
    module.kv.register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    module(torch.randn(2, 8, 8, DIM))
    assert seen == [torch.Size([2, 4, 2 * DIM])]


# -- linear attention ------------------------------------------------------------------------------


def _linear_reference(module: LinearAttention, x: torch.Tensor) -> torch.Tensor:
    """The quadratic form: y_i = sum_j (phi(q_i).phi(k_j)) v_j / sum_j phi(q_i).phi(k_j)."""
    b, t, c = x.shape
    heads = c // HEAD_DIM
    q, k, v = module.qkv(x).reshape(b, t, 3, heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
    phi = (lambda z: F.elu(z) + 1) if module.feature_map == "elu" else F.relu
    scores = phi(q) @ phi(k).transpose(-2, -1)  # (B, heads, t, t), non-negative
    y = (scores @ v) / (scores.sum(-1, keepdim=True) + 1e-6)
    return module.proj(y.transpose(1, 2).reshape(b, t, c))


@pytest.mark.parametrize("feature_map", ["elu", "relu"])
def test_linear_attention_equals_its_quadratic_form(feature_map: str) -> None:
    torch.manual_seed(0)
    module = LinearAttention(
        DIM, grid=(16,), head_dim=HEAD_DIM, qkv_bias=True, feature_map=feature_map
    ).double()
    x = _randn(2, 17, DIM)
    torch.testing.assert_close(module(x), _linear_reference(module, x))


@pytest.mark.parametrize("feature_map", ["elu", "relu"])
def test_linear_attention_is_permutation_equivariant(feature_map: str) -> None:
    torch.manual_seed(0)
    module = LinearAttention(
        DIM, grid=(16,), head_dim=HEAD_DIM, qkv_bias=True, feature_map=feature_map
    ).double()
    x = _randn(2, 16, DIM)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(module(x[:, perm]), module(x)[:, perm])


def test_linear_attention_weights_are_a_convex_combination() -> None:
    """With elu + 1 every weight is positive and they sum to one, so with identity projections
    and v = x each output lies inside the box spanned by the inputs."""
    module = LinearAttention(DIM, grid=(16,), head_dim=HEAD_DIM, qkv_bias=False, feature_map="elu")
    module = module.double()
    with torch.no_grad():
        module.qkv.weight[2 * DIM :] = torch.eye(DIM)
        module.proj.weight.copy_(torch.eye(DIM))
        module.proj.bias.zero_()
    x = _randn(1, 16, DIM)
    y = module(x)
    assert (y <= x.amax(dim=1, keepdim=True) + 1e-9).all()
    assert (y >= x.amin(dim=1, keepdim=True) - 1e-9).all()
