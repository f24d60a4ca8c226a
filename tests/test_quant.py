"""Fake quantizers, the policy applied by the builder, and calibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_space import ArchSpec, build_model, example_input
from search_space.errors import RegistryError, SpaceError
from search_space.nn.builder import count_params
from search_space.nn.quant.layers import QConv2d, QLinear, ScoreQuant
from search_space.nn.quant.policy import apply_policy, calibrate, quantizers, strip_policy
from search_space.nn.quant.quantizers import Log2Quantizer, UniformQuantizer
from search_space.quant import QUANTIZERS, float_policy, with_policy
from search_space.spec import Quant


def tiny_spec(mixers: tuple[str, ...] = ("attention", "dwconv")) -> ArchSpec:
    """A two-stage image spec with the given token mixers (one block each, second stage)."""
    blocks = [{"token_mixer": {"name": name}, "channel_mixer": {"name": "mlp"}} for name in mixers]
    data = {
        "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 4},
        "stem": {"name": "patch_embed", "params": {"patch_size": 4}},
        "stages": [
            {"width": 32, "blocks": [blocks[0]]},
            {"width": 32, "blocks": blocks},
        ],
        "head": {"name": "classifier"},
    }
    return ArchSpec.from_dict(data)


# -- quantizers ----------------------------------------------------------------------------------


def test_registry_names_and_unknown_name() -> None:
    assert {"uniform", "log2"} <= set(QUANTIZERS.names())
    assert QUANTIZERS.get("uniform").module_class() is UniformQuantizer
    with pytest.raises(RegistryError, match="known: log2, uniform"):
        QUANTIZERS.get("ternary")


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_uniform_error_is_at_most_half_a_step(bits: int) -> None:
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    for symmetric in (True, False):
        y = UniformQuantizer(bits, symmetric=symmetric)(x)
        if symmetric:
            step = x.abs().max() / (2 ** (bits - 1) - 1)
        else:
            step = (x.max() - x.min()) / (2**bits - 1)
        assert (y - x).abs().max() <= step / 2 + 1e-6
        levels = torch.unique(y).numel()
        assert 2 ** (bits - 1) < levels <= 2**bits


def test_asymmetric_keeps_zero_exact_and_per_channel_has_one_range_per_row() -> None:
    x = torch.tensor([[0.0, 0.3, 1.7], [0.0, -5.0, 40.0]])
    y = UniformQuantizer(4)(x)
    assert torch.equal(y[:, 0], torch.zeros(2))
    per_tensor = UniformQuantizer(4, symmetric=True)(x)
    per_channel = UniformQuantizer(4, symmetric=True, channel_axis=0)(x)
    # the small row keeps its detail only with its own range
    assert (per_channel[0] - x[0]).abs().max() < (per_tensor[0] - x[0]).abs().max()


def test_log2_levels_are_powers_of_two_of_the_max() -> None:
    p = torch.softmax(torch.randn(4, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    y = Log2Quantizer(4)(p)
    scale = p.max()
    nonzero = y[y > 0] / scale
    exponents = -torch.log2(nonzero)
    assert torch.allclose(exponents, exponents.round(), atol=1e-5)
    assert exponents.max() <= 2**4 - 2
    # within a factor sqrt(2) of each value kept (rounding in the log domain)
    kept = y > 0
    ratio = y[kept] / p[kept]
    assert ratio.max() <= 2**0.5 + 1e-5 and ratio.min() >= 2**-0.5 - 1e-5


def test_straight_through_gradients() -> None:
    x = torch.linspace(-2.0, 2.0, 41, requires_grad=True)
    q = UniformQuantizer(4, symmetric=True)
    q.observe()
    q(torch.linspace(-1.0, 1.0, 5))
    q.freeze("minmax")  # range [-1, 1] on the grid: values beyond it are clipped
    q(x).sum().backward()
    assert x.grad is not None
    inside = x.detach().abs() <= 1.0
    assert torch.equal(x.grad[inside], torch.ones(int(inside.sum())))
    assert torch.equal(x.grad[~inside], torch.zeros(int((~inside).sum())))


def test_constant_tensors_do_not_divide_by_zero() -> None:
    for q in (UniformQuantizer(4), UniformQuantizer(4, symmetric=True), Log2Quantizer(4)):
        out = q(torch.zeros(3, 3, requires_grad=True))
        assert torch.isfinite(out).all() and torch.equal(out, torch.zeros(3, 3))


def test_bad_bits_and_calibration_name_the_field() -> None:
    with pytest.raises(SpaceError, match=r"quantizer\.bits: must be one of"):
        UniformQuantizer(7)
    q = UniformQuantizer(8)
    q.observe()
    q(torch.ones(2))
    with pytest.raises(SpaceError, match="calibration: must be one of"):
        q.freeze("kl")


def test_percentile_and_mse_clip_heavy_tails() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20000, generator=gen)
    x[:3] = 60.0  # rare outliers stretch the min-max range
    errors = {}
    for method in ("minmax", "percentile", "mse"):
        q = UniformQuantizer(4)
        q.observe()
        q(x)
        q.freeze(method, percentile=99.9)
        errors[method] = float((q(x) - x).square().mean())
        if method != "minmax":
            assert float(q.hi) < 60.0
    assert errors["mse"] < errors["minmax"] and errors["percentile"] < errors["minmax"]


# -- the policy in the builder -------------------------------------------------------------------


def test_build_model_honours_the_policy() -> None:
    spec = with_policy(tiny_spec(), Quant(4, 8, "per_channel"), Quant(8, 8))
    model = build_model(spec)
    fp = build_model(spec, quantize=False)
    assert count_params(model) == count_params(fp)
    assert list(model.state_dict()) == list(fp.state_dict())
    assert not any(True for _ in quantizers(fp))
    qkv = model.stages[1][1].token.mixer.qkv
    assert isinstance(qkv, QLinear)
    assert qkv.weight_quant.bits == 4 and qkv.weight_quant.channel_axis == 0
    assert qkv.input_quant.bits == 8
    assert isinstance(model.stages[1][1].token.mixer.score_quant, ScoreQuant)
    stem_conv = next(m for m in model.stem.modules() if isinstance(m, nn.Conv2d))
    assert isinstance(stem_conv, QConv2d) and stem_conv.weight_quant.bits == 8
    x = example_input(spec, 4)
    model.eval(), fp.eval()
    with torch.no_grad():
        assert not torch.allclose(model(x), fp(x))  # the quantizers act
        assert torch.allclose(model(x), fp(x), atol=0.5)  # and stay close to float


def test_float_policy_builds_no_quantizers_and_32_bit_sides_stay_float() -> None:
    assert not any(True for _ in quantizers(build_model(float_policy(tiny_spec()))))
    spec = with_policy(tiny_spec(), Quant(8, 32))
    model = build_model(spec)
    qkv = model.stages[1][1].token.mixer.qkv
    assert qkv.weight_quant.bits == 8 and "input_quant" not in qkv._modules
    assert "score_quant" not in model.stages[1][1].token.mixer._modules  # float activations
    assert type(model.head.fc) is nn.Linear  # boundary stays float


def test_high_precision_scores_match_sdpa() -> None:
    spec = with_policy(tiny_spec(("attention",)), Quant(32, 16))
    fp = build_model(spec, quantize=False).eval()
    quantized = apply_policy(build_model(spec, quantize=False), spec, score_quantizer="uniform")
    for module in quantized.modules():  # only the score path: weights are float at 32 bits
        if isinstance(module, QLinear):
            module._modules.pop("input_quant")
    x = example_input(spec, 2)
    with torch.no_grad():
        assert torch.allclose(quantized(x), fp(x), atol=1e-3)


def test_strip_and_reapply() -> None:
    spec = with_policy(tiny_spec(), Quant(6, 6))
    model = build_model(spec)
    strip_policy(model)
    assert not any(True for _ in quantizers(model))
    assert all(type(m) is not QLinear for m in model.modules())
    apply_policy(model, with_policy(spec, Quant(4, 8)))
    assert {q.bits for q in quantizers(model)} == {4, 8}


def test_calibration_freezes_every_reached_quantizer() -> None:
    spec = with_policy(tiny_spec(), Quant(8, 8), Quant(8, 8))
    model = build_model(spec)
    batches = [example_input(spec, 4, seed=s) for s in range(3)]
    n = calibrate(model, batches, "mse")
    assert n == len(list(quantizers(model))) > 0
    assert all(q.frozen for q in quantizers(model))
    assert model.training  # mode restored
    with pytest.raises(ValueError, match="at least one batch"):
        calibrate(model, [], "minmax")


def test_with_policy_rejects_bad_bits() -> None:
    with pytest.raises(SpaceError, match=r"quant\.weight_bits: must be one of"):
        with_policy(tiny_spec(), Quant(7, 8))
    with pytest.raises(SpaceError, match="one policy per stage"):
        with_policy(tiny_spec(), [Quant(8, 8)])
