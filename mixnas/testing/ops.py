"""The contract of a token mixer or channel mixer, for the built-ins and for plug-ins.

For each op, each example parameter set (`OpDef.examples`, besides the defaults) and each context
(a 2-D grid, an odd 2-D grid with a class token, a 1-D sequence) the op's rules and spatial ranks
allow: `OpDef.build` makes the module, it keeps the token shape, runs forward and backward without
NaN, has exactly the analytic parameter count, and the MACs fvcore counts (with mixnas's handlers,
`evaluators.counting`) agree with the analytic formula within 2%. `check_documented` asks for a
doc line, a module docstring and, for token mixers, a complexity class and a family.

Causality (`search_space.ops.causal`): for every mixer that declares it can be causal
(``OpDef.causal``), `check_causal` makes it causal (its examples with the declared parameter
values) on a 1-D sequence, with and without a class token, and checks in eval mode that changing
the inputs after position t never changes the outputs at positions <= t, for several t and random
inputs (float64, tolerance 1e-5). `check_causal_refused` puts a mixer that is not causal (one that
declares nothing, or a causal-capable one with its flag off) before the LM head and expects a
one-line `SpaceError` naming it.

Use from a plug-in's tests::

    import pytest
    from mixnas.testing.ops import check_documented, check_mixer, mixer_cases

    @pytest.mark.parametrize(("op", "example", "ctx"), mixer_cases(["my_mixer"]))
    def test_my_mixer(op, example, ctx):
        check_mixer(op, example, ctx)

    @pytest.mark.parametrize(("op", "example", "ctx"), causal_cases(["my_mixer"]))
    def test_my_mixer_is_causal(op, example, ctx):
        check_causal(op, example, ctx)

    @pytest.mark.parametrize(("op", "params"), refusal_cases(["my_mixer"]))
    def test_my_mixer_is_refused_where_not_causal(op, params):
        check_causal_refused(op, params)
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
from search_space.spec import ArchSpec, Block, InputSpec, Op, Stage

CONTEXTS = (
    OpContext(dim=64, grid=(8, 8), prefix=0, out_dim=64),
    OpContext(dim=96, grid=(7, 7), prefix=1, out_dim=96),
    OpContext(dim=64, grid=(16,), prefix=0, out_dim=64),
)
REL_TOL = 0.02
# 1-D contexts of the causality check: a plain sequence, and one behind a class token
CAUSAL_CONTEXTS = (
    OpContext(dim=64, grid=(16,), prefix=0, out_dim=64),
    OpContext(dim=64, grid=(16,), prefix=1, out_dim=64),
)
CAUSAL_TOL = 1e-5


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


# -- causality ---------------------------------------------------------------------------------


def causal_cases(
    names: Iterable[str] | None = None, contexts: Iterable[OpContext] = CAUSAL_CONTEXTS
) -> list[Any]:
    """One ``pytest.param(op, params, ctx)`` per mixer that declares it can be causal, per example
    parameter set made causal (the declared values win) and 1-D context; duplicates dropped."""
    cases, seen = [], set()
    contexts = tuple(contexts)
    for op in mixer_ops(names):
        if op.causal is None or 1 not in op.spatial_dims:
            continue
        for example in ({}, *op.examples):
            params = {**example, **dict(op.causal.when)}
            key = (op.kind, op.name, tuple(sorted(params.items())))
            if key in seen:
                continue
            seen.add(key)
            for ctx in contexts:
                label = f"{op.name}-ex{len(seen)}-p{ctx.prefix}"
                cases.append(pytest.param(op, params, ctx, id=label))
    return cases


def sequence_axis(op: OpDef) -> int:
    """The axis of the op's layout along which the positions run (1-D grids)."""
    return 2 if op.layout == LAYOUT_GRID else 1


def check_causal(op: OpDef, params: dict[str, Any], ctx: OpContext) -> None:
    """Changing the inputs after position t never changes the outputs at positions <= t.

    The module runs in eval mode and float64 on seeded random inputs; for several t (the first
    position, a third, two thirds, the last but one) the positions after t are redrawn and the
    outputs up to t must agree within `CAUSAL_TOL`. In the ``tokens`` layout the class tokens
    are the first positions, so a causal mixer's class token output must not read the grid.
    """
    module, full = build_mixer(op, params, ctx)
    assert op.is_causal(full), f"{op.name}: {params} do not make it causal by its own declaration"
    module = module.double().eval()
    axis = sequence_axis(op)
    gen = torch.Generator().manual_seed(1)
    x = mixer_input(op, ctx, batch=2).double()
    length = x.shape[axis]
    with torch.no_grad():
        y = module(x)
        assert y.shape == x.shape, f"{op.name} changed the token shape"
        for t in sorted({0, length // 3, 2 * length // 3, length - 2}):
            x2 = x.clone()
            later = x2.narrow(axis, t + 1, length - t - 1)
            later.copy_(torch.randn(later.shape, generator=gen, dtype=later.dtype) * 3)
            y2 = module(x2)
            gap = (y.narrow(axis, 0, t + 1) - y2.narrow(axis, 0, t + 1)).abs().max().item()
            assert gap <= CAUSAL_TOL, (
                f"{op.name} {params}: changing positions > {t} moved the output at positions "
                f"<= {t} by {gap:.3g}"
            )


def refusal_cases(names: Iterable[str] | None = None) -> list[Any]:
    """One ``pytest.param(op, params)`` per token mixer that is not causal with ``params``: every
    mixer that declares no causality (its defaults), and every causal-capable one with its
    declared parameters flipped (``causal: false``, ``bidirectional: true``)."""
    cases = []
    for op in mixer_ops(names):
        if op.kind != "token_mixer":
            continue
        if op.causal is None:
            cases.append(pytest.param(op, {}, id=op.name))
        elif op.causal.when:
            flipped = {k: not v for k, v in op.causal.when if isinstance(v, bool)}
            if flipped:
                cases.append(pytest.param(op, flipped, id=f"{op.name}-flipped"))
    return cases


def causal_spec(mixer: Op, *, width: int = 64, seq_len: int = 16, vocab: int = 32) -> ArchSpec:
    """A minimal causal LM: token embedding, one block (``mixer``, an MLP), the LM head."""
    inp = InputSpec("tokens", vocab, seq_len=seq_len, vocab_size=vocab)
    block = Block(mixer, Op.of("mlp"), "layernorm")
    return ArchSpec(
        inp, Op.of("token_embed"), (Stage(width, Op.of("none"), (block,)),), Op.of("lm_head")
    )


def check_causal_refused(op: OpDef, params: dict[str, Any]) -> None:
    """Before the LM head, ``op`` with ``params`` is refused by a one-line `SpaceError` that
    names it."""
    from search_space import validate_spec

    with pytest.raises(SpaceError) as info:
        validate_spec(causal_spec(Op.of(op.name, op.complete(params, "params"))))
    message = str(info.value)
    assert "\n" not in message, f"{op.name}: the refusal is not one line: {message!r}"
    assert op.name in message, f"{op.name}: the refusal does not name the mixer: {message}"
