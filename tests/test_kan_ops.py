"""Behaviour of KAT's group-rational KAN channel mixer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from search_space.errors import SpaceError
from search_space.nn.kan import GroupRational, GroupRationalKan, rational
from search_space.ops import CHANNEL_MIXERS, OpContext


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_rational_evaluates_the_safe_pade_form() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5])
    a, b = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([0.5, -0.25])
    expected = (1 + 2 * x - x**2) / (1 + (0.5 * x).abs() + (-0.25 * x**2).abs())
    torch.testing.assert_close(rational(x, a, b), expected)


def test_identity_init_passes_inputs_through() -> None:
    act = GroupRational(4, 5, 4, "identity")
    x = _randn(2, 3, 8)
    torch.testing.assert_close(act(x), x)


@pytest.mark.parametrize(("init", "target"), [("gelu", F.gelu), ("swish", F.silu)])
def test_fitted_init_follows_its_target_on_the_fitted_range(init: str, target) -> None:
    act = GroupRational(2, 5, 4, init)
    x = torch.linspace(-3, 3, 257).reshape(1, -1, 1).expand(1, -1, 4).contiguous()
    assert (act(x) - target(x)).abs().max() < 0.02


def test_each_group_has_its_own_denominator() -> None:
    act = GroupRational(2, 3, 2, "identity")
    with torch.no_grad():
        act.denominator[1] = torch.tensor([1.0, 0.0])  # group 1: x / (1 + |x|)
    x = _randn(3, 6)
    y = act(x)
    torch.testing.assert_close(y[:, :3], x[:, :3])
    torch.testing.assert_close(y[:, 3:], x[:, 3:] / (1 + x[:, 3:].abs()))


def test_denominator_never_vanishes() -> None:
    act = GroupRational(1, 5, 4, "identity")
    with torch.no_grad():
        act.denominator.copy_(torch.tensor([[-3.0, 2.0, -5.0, 1.0]]))
    y = act(torch.linspace(-10, 10, 2001)[:, None])
    assert torch.isfinite(y).all()


def test_identity_rationals_make_a_linear_mixer() -> None:
    kan = GroupRationalKan(
        8, grid=(4,), ratio=2.0, groups=4, num_order=5, den_order=4, init="identity", bias=True
    )
    x = _randn(2, 5, 8)
    torch.testing.assert_close(kan(x), kan.fc2(kan.fc1(x)))


def test_groups_must_divide_both_widths() -> None:
    op = CHANNEL_MIXERS.get("kan")
    with pytest.raises(SpaceError, match="groups=8"):
        op.check_rules(OpContext(dim=12, grid=(4, 4)), op.complete({}, "c"), "c")


def test_kat_s_mixer_parameters() -> None:
    # KAT-S: width 384, ratio 4, 8 groups, orders (5, 4): the MLP's weights plus 2 x 38 rationals
    op = CHANNEL_MIXERS.get("kan")
    cost = op.cost(OpContext(dim=384, grid=(14, 14), prefix=1), op.complete({}, "c"))
    mlp = 2 * 384 * 1536 + 1536 + 384
    assert cost.params == mlp + 2 * (6 + 8 * 4)
