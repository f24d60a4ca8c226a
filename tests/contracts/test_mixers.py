"""Contract every registered token mixer and channel mixer passes.

For each op, each example parameter set and each context (2-D grid, odd 2-D grid with a class
token, 1-D sequence): the module builds with explicit keywords, keeps the token shape, runs forward
and backward without NaN, has exactly the analytic parameter count, and fvcore's counted MACs (with
mixnas's handlers) agree with the analytic formula within 2%.
"""

from __future__ import annotations

import math

import pytest
import torch

from evaluators.counting import count_macs
from search_space.errors import SpaceError
from search_space.ops import CHANNEL_MIXERS, TOKEN_MIXERS, OpContext, OpDef
from search_space.ops.base import LAYOUT_GRID, LAYOUT_GRID_LAST, LAYOUT_SEQUENCE, LAYOUT_TOKENS

CONTEXTS = (
    OpContext(dim=64, grid=(8, 8), prefix=0, out_dim=64),
    OpContext(dim=96, grid=(7, 7), prefix=1, out_dim=96),
    OpContext(dim=64, grid=(16,), prefix=0, out_dim=64),
)


def _cases(registry, contexts=CONTEXTS) -> list:
    """One case per (op, example parameter set, context) the op's spatial dims allow."""
    cases = []
    for name in registry.names():
        op: OpDef = registry.get(name)
        if op.kind == "channel_mixer" and name == "none":
            continue
        for i, example in enumerate(({}, *op.examples)):
            for ctx in contexts:
                if len(ctx.grid) in op.spatial_dims:
                    label = f"{name}-ex{i}-{'x'.join(map(str, ctx.grid))}-p{ctx.prefix}"
                    cases.append(pytest.param(op, example, ctx, id=label))
    return cases


def _input(op: OpDef, ctx: OpContext, batch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if op.layout == LAYOUT_TOKENS:
        shape = (batch, ctx.tokens, ctx.dim)
    elif op.layout == LAYOUT_SEQUENCE:
        shape = (batch, ctx.n, ctx.dim)
    elif op.layout == LAYOUT_GRID:
        shape = (batch, ctx.dim, *ctx.grid)
    else:
        assert op.layout == LAYOUT_GRID_LAST
        shape = (batch, *ctx.grid, ctx.dim)
    return torch.randn(*shape, generator=gen)


def _module(op: OpDef, example: dict, ctx: OpContext) -> tuple[torch.nn.Module, dict]:
    params = op.complete(example, "params")
    try:
        op.check_rules(ctx, params, "op")
    except SpaceError as err:
        pytest.skip(f"context not allowed by the op's rules: {err}")
    torch.manual_seed(0)
    return op.module_class()(ctx.dim, grid=ctx.grid, **params), params


@pytest.mark.parametrize(("op", "example", "ctx"), _cases(TOKEN_MIXERS) + _cases(CHANNEL_MIXERS))
def test_mixer_contract(op: OpDef, example: dict, ctx: OpContext) -> None:
    module, params = _module(op, example, ctx)
    x = _input(op, ctx, batch=2).requires_grad_(True)
    y = module(x)
    assert y.shape == x.shape, f"{op.name} changed the token shape"
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for p in module.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()

    analytic = op.cost(ctx, params)
    assert sum(p.numel() for p in module.parameters()) == analytic.params
    counted = count_macs(module, _input(op, ctx, batch=1))
    assert math.isclose(counted, analytic.macs, rel_tol=0.02, abs_tol=0), (
        f"{op.name}: counted {counted} MACs, analytic {analytic.macs}"
    )


@pytest.mark.parametrize("registry", [TOKEN_MIXERS, CHANNEL_MIXERS])
def test_every_mixer_documents_itself(registry) -> None:
    for name in registry.names():
        op = registry.get(name)
        assert op.doc, f"{name} has no doc line"
        cls = op.module_class()
        assert cls.__doc__, f"{cls.__name__} has no docstring"
        if op.kind == "token_mixer":
            assert op.complexity and op.family, f"{name} lacks complexity class or family"
