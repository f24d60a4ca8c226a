"""Behaviour of the focused linear, outlook, convolutional-projection and channel attention mixers
beyond shapes and costs: each against a naive reference written out here from the paper's
definition, with the module's own weights."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from search_space.nn.mixers.attention import Attention
from search_space.nn.mixers.channel_attention import ChannelAttention
from search_space.nn.mixers.conv_attention import ConvAttention
from search_space.nn.mixers.focused_linear import FocusedLinearAttention, focus
from search_space.nn.mixers.levit_attention import LeViTAttention
from search_space.nn.mixers.outlook import OutlookAttention

DIM, HEAD_DIM = 32, 8
HEADS = DIM // HEAD_DIM


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- focused linear attention ------------------------------------------------------------------


def _focused(grid: tuple[int, ...], window: int, p: float = 3.0) -> FocusedLinearAttention:
    torch.manual_seed(0)
    module = FocusedLinearAttention(
        DIM,
        grid=grid,
        window=window,
        head_dim=HEAD_DIM,
        qkv_bias=True,
        focusing_factor=p,
        kernel=3,
    )
    with torch.no_grad():  # a non-trivial learned scale
        module.scale.copy_(torch.linspace(-1, 1, DIM).view(1, 1, DIM))
    return module.double().eval()


def test_focusing_keeps_the_norm_and_sharpens_towards_the_largest_channel() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    y = focus(x, 3.0)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    assert y[0, 2] / y[0, 0] > x[0, 2] / x[0, 0]


@pytest.mark.parametrize(("grid", "window"), [((8, 8), 8), ((7, 7), 4), ((8, 6), 3), ((10,), 4)])
def test_focused_linear_attention_matches_the_quadratic_form_per_window(
    grid: tuple[int, ...], window: int
) -> None:
    """Per window, y_i = sum_j a_ij v_j / (sum_j a_ij + n eps) + dwconv(V)_i with
    a_ij = phi(q_i).phi(k_j), over the window's real tokens only (padding neither attended nor
    normalised over)."""
    module = _focused(grid, window)
    x = _randn(2, *grid, DIM)
    wins = tuple(min(window, g) for g in grid)
    pe = module.positional_encoding.detach()[0]
    scale = F.softplus(module.scale.detach()[0, 0])
    out = torch.zeros(2, *grid, DIM, dtype=torch.float64)
    with torch.no_grad():
        q_all, k_all, v_all = module.qkv(x).chunk(3, dim=-1)
        starts = itertools.product(*(range(0, g, w) for g, w in zip(grid, wins, strict=True)))
        for start in starts:
            # positions of the window (row-major inside it) and which of them are real
            offsets = list(itertools.product(*map(range, wins)))
            pos = [tuple(s + o for s, o in zip(start, off, strict=True)) for off in offsets]
            real = [all(p < g for p, g in zip(ps, grid, strict=True)) for ps in pos]
            idx = [i for i, r in enumerate(real) if r]
            sel = [(slice(None), *ps) for ps, r in zip(pos, real, strict=True) if r]
            q = torch.stack([q_all[s] for s in sel], dim=1)
            k = torch.stack([k_all[s] for s in sel], dim=1) + pe[idx]
            v = torch.stack([v_all[s] for s in sel], dim=1)
            fq = focus((F.relu(q) + 1e-6) / scale, 3.0).view(2, -1, HEADS, HEAD_DIM)
            fk = focus((F.relu(k) + 1e-6) / scale, 3.0).view(2, -1, HEADS, HEAD_DIM)
            vh = v.view(2, -1, HEADS, HEAD_DIM)
            a = torch.einsum("bihc,bjhc->bhij", fq, fk)
            # FLatten: means over the window's n real keys, eps on the mean
            norm = (a.sum(-1) + len(idx) * 1e-6).transpose(1, 2)[..., None]
            y = torch.einsum("bhij,bjhc->bihc", a, vh) / norm
            # dwconv on the window's V map, zeros at padding, weights shared by the heads
            vmap = torch.zeros(2, HEADS, HEAD_DIM, math.prod(wins), dtype=torch.float64)
            vmap[..., idx] = vh.permute(0, 2, 3, 1)
            conv = module.dwc(vmap.reshape(2 * HEADS, HEAD_DIM, *wins)).reshape(
                2, HEADS, HEAD_DIM, -1
            )
            y = y + conv[..., idx].permute(0, 3, 1, 2)
            for n, s in enumerate(sel):
                out[s] = y[:, n].reshape(2, DIM)
        torch.testing.assert_close(module(x), module.proj(out))


def test_focused_linear_windows_do_not_mix() -> None:
    module = _focused((8, 8), 4)
    x = _randn(1, 8, 8, DIM)
    y = x.clone()
    y[0, 0, 0] += 1.0
    with torch.no_grad():
        changed = (module(x) - module(y)).abs().sum(-1)[0] > 0
    assert changed[:4, :4].all() and not changed[4:].any() and not changed[:, 4:].any()


# -- outlook attention -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "kernel", "stride"), [((7, 7), 3, 2), ((6, 5), 3, 1), ((8, 8), 5, 3), ((9,), 3, 2)]
)
def test_outlook_attention_matches_its_definition(
    grid: tuple[int, ...], kernel: int, stride: int
) -> None:
    """Per centre: pool the features of its stride^r cell, predict per head a (K^r, K^r)
    softmax matrix, mix the K^r window values, add each output back at its window position."""
    torch.manual_seed(0)
    module = OutlookAttention(
        DIM, grid=grid, kernel=kernel, stride=stride, head_dim=HEAD_DIM, qkv_bias=True
    ).double()
    x = _randn(2, *grid, DIM)
    rank = len(grid)
    offsets = list(itertools.product(range(kernel), repeat=rank))
    out = torch.zeros_like(x)
    with torch.no_grad():
        v = module.v(x)
        centres = itertools.product(*(range(0, g, stride) for g in grid))
        for centre in centres:
            cell = tuple(slice(c, c + stride) for c in centre)
            feat = x[(slice(None), *cell)].reshape(2, -1, DIM).mean(1)
            k2 = len(offsets)
            attn = module.attn(feat).reshape(2, HEADS, k2, k2)
            attn = (attn / math.sqrt(HEAD_DIM)).softmax(-1)
            pos = [
                tuple(c - kernel // 2 + o for c, o in zip(centre, off, strict=True))
                for off in offsets
            ]
            inside = [all(0 <= p < g for p, g in zip(ps, grid, strict=True)) for ps in pos]
            vals = torch.zeros(2, k2, HEADS, HEAD_DIM, dtype=torch.float64)
            for a, (ps, ok) in enumerate(zip(pos, inside, strict=True)):
                if ok:
                    vals[:, a] = v[(slice(None), *ps)].reshape(2, HEADS, HEAD_DIM)
            mixed = torch.einsum("nhba,nahc->bnhc", attn, vals)  # output b of the window
            for b_idx, (ps, ok) in enumerate(zip(pos, inside, strict=True)):
                if ok:
                    out[(slice(None), *ps)] += mixed[b_idx].reshape(2, DIM)
        torch.testing.assert_close(module(x), module.proj(out))


# -- convolutional-projection attention --------------------------------------------------------


def _conv_attention(grid: tuple[int, ...], kernel: int, stride_kv: int) -> ConvAttention:
    """A CvT attention whose convs pass the centre tap through and whose BNs are identities, so
    the reference below can be plain attention over (sub-sampled) tokens."""
    torch.manual_seed(0)
    module = ConvAttention(
        DIM, grid=grid, kernel=kernel, stride_kv=stride_kv, head_dim=HEAD_DIM, qkv_bias=True
    ).double()
    with torch.no_grad():
        for proj in (module.conv_proj_q, module.conv_proj_k, module.conv_proj_v):
            proj.conv.weight.zero_()
            proj.conv.weight[(slice(None), 0, *[kernel // 2] * len(grid))] = 1.0
            proj.bn.eps = 0.0
    return module.eval()


@pytest.mark.parametrize(("grid", "prefix"), [((6, 5), 1), ((9,), 0), ((4, 4), 2)])
def test_conv_attention_without_stride_and_identity_convs_is_global_attention(
    grid: tuple[int, ...], prefix: int
) -> None:
    module = _conv_attention(grid, 3, 1)
    twin = Attention(DIM, grid=grid, head_dim=HEAD_DIM, qkv_bias=True).double()
    with torch.no_grad():
        twin.qkv.weight.copy_(
            torch.cat([module.proj_q.weight, module.proj_k.weight, module.proj_v.weight])
        )
        twin.qkv.bias.copy_(torch.cat([module.proj_q.bias, module.proj_k.bias, module.proj_v.bias]))
        twin.proj.load_state_dict(module.proj.state_dict())
        x = _randn(2, prefix + math.prod(grid), DIM)
        torch.testing.assert_close(module(x), twin.eval()(x))


def test_conv_attention_strided_keys_are_the_class_token_and_every_other_position() -> None:
    grid, prefix = (7, 6), 1
    module = _conv_attention(grid, 3, 2)
    x = _randn(2, prefix + 42, DIM)
    coords = list(itertools.product(*map(range, grid)))
    keep = [0] + [prefix + i for i, (r, c) in enumerate(coords) if r % 2 == 0 and c % 2 == 0]
    with torch.no_grad():
        q = module.proj_q(x).view(2, -1, HEADS, HEAD_DIM).transpose(1, 2)
        k = module.proj_k(x[:, keep]).view(2, -1, HEADS, HEAD_DIM).transpose(1, 2)
        v = module.proj_v(x[:, keep]).view(2, -1, HEADS, HEAD_DIM).transpose(1, 2)
        attn = (q @ k.transpose(-1, -2) / math.sqrt(HEAD_DIM)).softmax(-1)
        expected = module.proj((attn @ v).transpose(1, 2).reshape(2, -1, DIM))
        torch.testing.assert_close(module(x), expected)


# -- channel attention -------------------------------------------------------------------------


def _channel(style: str) -> ChannelAttention:
    torch.manual_seed(0)
    module = ChannelAttention(DIM, grid=(1,), head_dim=HEAD_DIM, qkv_bias=True, style=style)
    if module.temperature is not None:
        with torch.no_grad():
            module.temperature.copy_(torch.linspace(0.5, 2.0, HEADS).view(HEADS, 1, 1))
    return module.double().eval()


@pytest.mark.parametrize("style", ["xca", "davit"])
def test_channel_attention_mixes_channels_within_heads_by_token_statistics(style: str) -> None:
    module = _channel(style)
    x = _randn(2, 20, DIM)
    with torch.no_grad():
        q, k, v = (z.view(2, 20, HEADS, HEAD_DIM) for z in module.qkv(x).chunk(3, dim=-1))
        if style == "xca":
            qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)  # along the tokens
            tau = module.temperature.view(1, HEADS, 1, 1)
            weights = (torch.einsum("bnhi,bnhj->bhij", qn, kn) * tau).softmax(-1)
            y = torch.einsum("bhij,bnhj->bnhi", weights, v)
        else:
            weights = (torch.einsum("bnhi,bnhj->bhij", k, v) / math.sqrt(HEAD_DIM)).softmax(-1)
            y = torch.einsum("bhij,bnhj->bnhi", weights, q)
        torch.testing.assert_close(module(x), module.proj(y.reshape(2, 20, DIM)))


@pytest.mark.parametrize("style", ["xca", "davit"])
def test_channel_attention_is_token_permutation_equivariant(style: str) -> None:
    module = _channel(style)
    x = _randn(1, 12, DIM)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(module(x)[:, perm], module(x[:, perm]))


# -- LeViT / EfficientFormer attention ---------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "norm", "act"),
    [((4, 5), "batchnorm", "hardswish"), ((7, 7), "none", "identity"), ((9,), "batchnorm", "relu")],
)
def test_levit_attention_adds_one_learned_bias_per_absolute_offset(
    grid: tuple[int, ...], norm: str, act: str
) -> None:
    torch.manual_seed(0)
    heads, key_dim, val_dim = 3, 8, 16
    module = LeViTAttention(
        DIM, grid=grid, key_dim=key_dim, heads=heads, attn_ratio=2.0, norm=norm, act=act
    ).double()
    n = math.prod(grid)
    with torch.no_grad():
        module.attention_biases.normal_()
        if module.qkv.bn is not None:  # non-trivial inference statistics
            for bn in (module.qkv.bn, module.proj.bn):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
    module.eval()
    coords = list(itertools.product(*map(range, grid)))
    # reference table lookup: entry of (|d_1|, ..., |d_r|) in row-major order over the grid
    bias = torch.zeros(heads, n, n, dtype=torch.float64)
    for i, p in enumerate(coords):
        for j, q in enumerate(coords):
            entry = coords.index(tuple(abs(a - b) for a, b in zip(p, q, strict=True)))
            bias[:, i, j] = module.attention_biases[:, entry].detach()
    x = _randn(2, n, DIM)
    with torch.no_grad():
        qkv = module.qkv(x).view(2, n, heads, 2 * key_dim + val_dim).transpose(1, 2)
        q, k, v = qkv.split([key_dim, key_dim, val_dim], dim=-1)
        attn = (q @ k.transpose(-1, -2) / math.sqrt(key_dim) + bias).softmax(-1)
        y = (attn @ v).transpose(1, 2).reshape(2, n, heads * val_dim)
        activation = {"hardswish": F.hardswish, "relu": F.relu, "identity": lambda t: t}[act]
        torch.testing.assert_close(module(x), module.proj(activation(y)))


# -- bad parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("hilo_attention", {"alpha": 1.5}, "alpha=1.5 must lie in"),
        ("neighborhood_attention", {"kernel": 4}, "kernel=4 must be odd"),
        ("routing_attention", {"lepe_kernel": 2}, "lepe_kernel=2 must be 0"),
        ("outlook_attention", {"kernel": 2}, "kernel=2 must be odd"),
        ("conv_attention", {"kernel": 2}, "kernel=2 must be odd"),
        ("levit_attention", {"attn_ratio": 0.01}, "no value channels"),
        ("grid_attention", {"head_dim": 48}, "head_dim=48 does not divide"),
    ],
)
def test_bad_parameters_name_the_op_and_the_value(name: str, params: dict, message: str) -> None:
    from search_space.errors import SpaceError
    from search_space.ops import TOKEN_MIXERS, OpContext

    op = TOKEN_MIXERS.get(name)
    full = op.complete(params, "mixer")
    with pytest.raises(SpaceError, match=message) as err:
        op.check_rules(OpContext(dim=64, grid=(8, 8)), full, "stages[0].blocks[0].token_mixer")
    assert name in str(err.value) and "stages[0].blocks[0].token_mixer" in str(err.value)
