"""The contract of a token or channel mixer under fake quantization, for built-ins and plug-ins.

For each op (default parameters and its examples) on a 2-D grid and, where the op supports it, a
1-D sequence: with weights and activations fake-quantized at 4, 6 and 8 bits
(`search_space.nn.quant.policy.quantize_module`), the module keeps the token shape and runs
forward and backward without NaN or inf; every Linear/Conv layer carries quantizers, attention
mixers that declare ``QUANT_SCORES`` carry a score quantizer, and 8 bits stay closer to the float
output than 4 bits.

Use from a plug-in's tests::

    import pytest
    from mixnas.testing.quant import check_quantized_mixer, quant_cases

    @pytest.mark.parametrize(("op", "example", "ctx"), quant_cases(["my_mixer"]))
    def test_my_mixer_quantized(op, example, ctx):
        check_quantized_mixer(op, example, ctx)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest
import torch
from torch import nn

from mixnas.testing.ops import mixer_cases
from mixnas.testing.ops import mixer_input as _input
from search_space.errors import SpaceError
from search_space.nn.quant.layers import QUANTIZED, ScoreQuant
from search_space.nn.quant.policy import quantize_module
from search_space.nn.quant.quantizers import FakeQuantizer
from search_space.ops import OpContext, OpDef
from search_space.spec import Quant

CONTEXTS = (
    OpContext(dim=32, grid=(6, 6), prefix=0, out_dim=32),
    OpContext(dim=32, grid=(12,), prefix=0, out_dim=32),
)
BITS = (4, 6, 8)


def quant_cases(names: Iterable[str] | None = None) -> list[Any]:
    """``pytest.param(op, example, ctx)`` per mixer named (all when None), example and context."""
    return mixer_cases(names, contexts=CONTEXTS)


def _allowed(op: OpDef, example: dict, ctx: OpContext) -> OpContext:
    """``ctx``, or the same with a class token for mixers that need one (class attention)."""
    params = op.complete(example, "params")
    problem = None
    for candidate in (ctx, dataclasses.replace(ctx, prefix=1)):
        try:
            op.check_rules(candidate, params, "op")
            return candidate
        except SpaceError as err:
            problem = problem or err
    pytest.skip(f"context not allowed by the op's rules: {problem}")


def _build(op: OpDef, example: dict, ctx: OpContext) -> nn.Module:
    params = op.complete(example, "params")
    torch.manual_seed(0)
    module = op.build(ctx, params)
    assert isinstance(module, nn.Module)
    return module


def check_quantized_mixer(op: OpDef, example: dict[str, Any], ctx: OpContext) -> None:
    """At 4, 6 and 8 bits: shape, finite forward and backward, quantizers on every layer, and 8
    bits closer to the float output than 4."""
    ctx = _allowed(op, example, ctx)
    reference = _build(op, example, ctx).eval()
    x = _input(op, ctx, batch=2)
    with torch.no_grad():
        y_float = reference(x)
    errors = {}
    for bits in BITS:
        module = quantize_module(_build(op, example, ctx), Quant(bits, bits)).eval()
        for layer in module.modules():
            if type(layer) in QUANTIZED.values():
                weight_quant, input_quant = layer.weight_quant, layer.input_quant
                assert isinstance(weight_quant, FakeQuantizer)
                assert isinstance(input_quant, FakeQuantizer)
                assert weight_quant.bits == bits and input_quant.bits == bits
            assert type(layer) not in QUANTIZED, f"{op.name}: a float {type(layer).__name__} left"
            if getattr(type(layer), "QUANT_SCORES", False):
                assert isinstance(layer._modules.get("score_quant"), ScoreQuant)
        xg = x.clone().requires_grad_(True)
        y = module(xg)
        assert y.shape == x.shape, f"{op.name} changed the token shape"
        assert torch.isfinite(y).all(), f"{op.name}: non-finite output at {bits} bits"
        y.square().mean().backward()
        assert xg.grad is not None and torch.isfinite(xg.grad).all()
        for p in module.parameters():
            assert p.grad is None or torch.isfinite(p.grad).all()
        errors[bits] = float((y.detach() - y_float).norm() / y_float.norm().clamp_min(1e-12))
    assert errors[8] <= errors[4] + 1e-6, errors
