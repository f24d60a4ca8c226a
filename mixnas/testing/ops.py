"""The contract of a token mixer or channel mixer, for the built-ins and for plug-ins.

For each op, each example parameter set (`OpDef.examples`, besides the defaults) and each context
(a 2-D grid, an odd 2-D grid with a class token, a 1-D sequence) the op's rules and spatial ranks
allow: `OpDef.build` makes the module, it keeps the token shape, runs forward and backward without
NaN, has exactly the analytic parameter count, and the MACs fvcore counts (with mixnas's handlers,
`evaluators.counting`) agree with the analytic formula within 2%. `check_documented` asks for a
doc line, a module docstring and, for token mixers, a complexity class and a family.

Use from a plug-in's tests::

    import pytest
    from mixnas.testing.ops import check_documented, check_mixer, mixer_cases

    @pytest.mark.parametrize(("op", "example", "ctx"), mixer_cases(["my_mixer"]))
    def test_my_mixer(op, example, ctx):
        check_mixer(op, example, ctx)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pytest
import torch

from search_space.errors import SpaceError
from search_space.ops import CHANNEL_MIXERS, TOKEN_MIXERS, OpContext, OpDef
from search_space.ops.base import LAYOUT_GRID, LAYOUT_SEQUENCE, LAYOUT_TOKENS

CONTEXTS = (
    OpContext(dim=64, grid=(8, 8), prefix=0, out_dim=64),
    OpContext(dim=96, grid=(7, 7), prefix=1, out_dim=96),
    OpContext(dim=64, grid=(16,), prefix=0, out_dim=64),
)
REL_TOL = 0.02


def mixer_ops(names: Iterable[str] | None = None) -> list[OpDef]:
    """The registered token and channel mixers named (all of them when None); an unknown name
    raises the registry's error, which lists the known ones."""
    if names is None:
        return [
            registry.get(n)
            for registry in (TOKEN_MIXERS, CHANNEL_MIXERS)
            for n in registry.names()
            if not (registry is CHANNEL_MIXERS and n == "none")
        ]
    out = []
    for name in names:
        out.append(CHANNEL_MIXERS.get(name) if name not in TOKEN_MIXERS else TOKEN_MIXERS.get(name))
    return out


def mixer_cases(
    names: Iterable[str] | None = None, contexts: Iterable[OpContext] = CONTEXTS
) -> list[Any]:
    """One ``pytest.param(op, example, ctx)`` per (op, example parameter set, context) the op's
    spatial ranks allow."""
    cases = []
    contexts = tuple(contexts)
    for op in mixer_ops(names):
        for i, example in enumerate(({}, *op.examples)):
            for ctx in contexts:
                if len(ctx.grid) in op.spatial_dims:
                    label = f"{op.name}-ex{i}-{'x'.join(map(str, ctx.grid))}-p{ctx.prefix}"
                    cases.append(pytest.param(op, example, ctx, id=label))
    return cases


def mixer_input(op: OpDef, ctx: OpContext, batch: int) -> torch.Tensor:
    """A seeded random input in the op's layout."""
    gen = torch.Generator().manual_seed(0)
    if op.layout == LAYOUT_TOKENS:
        shape: tuple[int, ...] = (batch, ctx.tokens, ctx.dim)
    elif op.layout == LAYOUT_SEQUENCE:
        shape = (batch, ctx.n, ctx.dim)
    elif op.layout == LAYOUT_GRID:
        shape = (batch, ctx.dim, *ctx.grid)
    else:  # grid_last
        shape = (batch, *ctx.grid, ctx.dim)
    return torch.randn(*shape, generator=gen)


def build_mixer(
    op: OpDef, example: dict[str, Any], ctx: OpContext
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The op's module at ``ctx`` (seeded) and its complete parameters; skips the test when the
    op's rules do not allow the context."""
    params = op.complete(example, "params")
    try:
        op.check_rules(ctx, params, "op")
    except SpaceError as err:
        pytest.skip(f"context not allowed by the op's rules: {err}")
    torch.manual_seed(0)
    module = op.build(ctx, params)
    assert isinstance(module, torch.nn.Module), f"{op.name} built a {type(module).__name__}"
    return module, params


def check_mixer(op: OpDef, example: dict[str, Any], ctx: OpContext) -> None:
    """Shape, finite forward and backward, exact parameter count, MACs within 2% of counted."""
    from evaluators.counting import count_macs

    module, params = build_mixer(op, example, ctx)
    x = mixer_input(op, ctx, batch=2).requires_grad_(True)
    y = module(x)
    assert y.shape == x.shape, f"{op.name} changed the token shape"
    assert torch.isfinite(y).all(), f"{op.name}: non-finite output"
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all(), f"{op.name}: bad input gradient"
    for p in module.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), f"{op.name}: non-finite gradient"

    analytic = op.cost(ctx, params)
    counted_params = sum(p.numel() for p in module.parameters())
    assert counted_params == analytic.params, (
        f"{op.name}: the module has {counted_params} parameters, the analytic cost "
        f"{analytic.params}"
    )
    counted = count_macs(module, mixer_input(op, ctx, batch=1))
    assert math.isclose(counted, analytic.macs, rel_tol=REL_TOL, abs_tol=0), (
        f"{op.name}: counted {counted} MACs, analytic {analytic.macs}"
    )


def check_documented(op: OpDef) -> None:
    """A doc line, a module docstring, and for token mixers a complexity class and family."""
    assert op.doc, f"{op.name} has no doc line"
    cls = op.module_class()
    assert cls.__doc__, f"{cls.__name__} has no docstring"
    if op.kind == "token_mixer":
        assert op.complexity and op.family, f"{op.name} lacks complexity class or family"
