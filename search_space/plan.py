"""Walks a spec op by op: the one place that knows how widths, grids and prefix tokens flow.

`plan(spec)` checks a spec against the registries and returns every op it contains with its full
parameters and context. Validation, analytic costs, the model builder and (later) latency lookup
tables all read the plan, so they cannot disagree about shapes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from search_space.errors import RegistryError, SpaceError
from search_space.ops import (
    CHANNEL_MIXERS,
    DOWNSAMPLERS,
    HEADS,
    NORMS,
    STEMS,
    TOKEN_MIXERS,
    OpContext,
    OpDef,
)
from search_space.ops.base import LAYOUT_TOKENS
from search_space.ops.causal import check_causal_plan
from search_space.ops.heads import check_tied_head
from search_space.ops.stems import prefix_tokens
from search_space.registry import Registry
from search_space.spec import (
    ALLOWED_BITS,
    FLOAT,
    SCOPE_DATA,
    TOKENS_PREFIX,
    ArchSpec,
    Op,
    Quant,
    Skip,
    Stage,
)
from search_space.structure import (
    LATENT_READ,
    LATENT_TOKENS,
    LATENT_WRITE,
    NESTED_MLP,
    SKIP_MERGE,
    groups_of,
    shared_view,
)


@dataclass(frozen=True)
class PlannedOp:
    """One op of a spec in context.

    Attributes:
        path: field path in the spec, e.g. ``stages[1].blocks[0].token_mixer``.
        role: ``stem``, ``downsample``, ``norm1``, ``token_mixer``, ``layer_scale1``, ``norm2``,
            ``channel_mixer``, ``layer_scale2`` or ``head``.
        op: the registered definition (None for layer scales, which are not registered ops).
        ctx: input channels, grid, prefix tokens, output channels.
        params: every parameter, defaults filled in.
        quant: the quantization policy that applies.
        stage: stage index (-1 for stem and head); block: block index within the stage (or -1).
        times: how often the op runs with the same weights (a block's ``repeat``); costs count
            MACs that many times and parameters once.

    Structural roles besides the registered ops: ``merge`` (a stage's `Skip`), ``latents``,
    ``read`` and ``write`` (a stage's `Latents`; ``read``/``write`` come before the first and
    after the last block of each run of ``scope: latent`` blocks).
    """

    path: str
    role: str
    op: OpDef | None
    ctx: OpContext
    params: dict[str, Any]
    quant: Quant
    stage: int = -1
    block: int = -1
    times: int = 1

    def signature(self) -> str:
        """A stable key for what this op computes: kind, name, shapes, parameters and bits.

        Two ops with the same signature cost the same on a device, so latency lookup tables and
        caches key on it (it ignores where in the network the op sits).
        """
        role = self.role.rstrip("12")
        if self.op is not None:
            shape = self.op.signature(self.ctx, self.params, role)
        else:  # a layer scale: not a registered op
            params = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
            grid = "x".join(map(str, self.ctx.grid))
            ctx = self.ctx
            shape = (
                f"{role}:layer_scale[{params}]"
                f"@d{ctx.dim}->{ctx.out_dim or ctx.dim},g{grid},p{ctx.prefix}"
            )
        q = self.quant
        return f"{shape},w{q.weight_bits}a{q.act_bits}{q.granularity[4]}"


def _lookup(registry: Registry[OpDef], name: str, path: str) -> OpDef:
    try:
        return registry.get(name)
    except RegistryError as err:
        raise SpaceError(path, str(err), value=name) from None


def _planned(
    registry: Registry[OpDef],
    ref: Op,
    path: str,
    role: str,
    ctx: OpContext,
    quant: Quant,
    stage: int = -1,
    block: int = -1,
) -> PlannedOp:
    op = _lookup(registry, ref.name, f"{path}.name")
    params = op.complete(ref.kwargs, f"{path}.params")
    op.check_rules(ctx, params, path)
    return PlannedOp(path, role, op, ctx, params, quant, stage, block)


def _check_quant(quant: Quant, path: str) -> None:
    for key in ("weight_bits", "act_bits"):
        bits = getattr(quant, key)
        if bits not in ALLOWED_BITS:
            raise SpaceError(f"{path}.{key}", f"must be one of {list(ALLOWED_BITS)}", value=bits)


def _check_grid(grid: tuple[int, ...], path: str) -> None:
    if any(g < 1 for g in grid):
        raise SpaceError(
            path,
            "the token grid vanishes here; use fewer downsamplings or a larger input",
            value=list(grid),
        )


def _check_stem_matches_input(spec: ArchSpec) -> None:
    inp, name = spec.input, spec.stem.name
    if inp.kind == "tokens" and inp.vocab_size and name != "token_embed":
        raise SpaceError(
            "stem.name", "integer token input needs the 'token_embed' stem", value=name
        )
    if name == "token_embed" and not (inp.kind == "tokens" and inp.vocab_size):
        raise SpaceError(
            "stem.name", "'token_embed' needs token input with a vocab_size", value=name
        )


def plan(spec: ArchSpec) -> list[PlannedOp]:
    """Every op of ``spec`` in execution order; raises `SpaceError` if the spec is invalid."""
    _check_stem_matches_input(spec)
    _check_quant(spec.boundary_quant, "boundary_quant")
    inp, bq = spec.input, spec.boundary_quant
    ctx = OpContext(dim=inp.in_channels, grid=inp.grid, out_dim=spec.stages[0].width)
    stem = _planned(STEMS, spec.stem, "stem", "stem", ctx, bq)
    ops = [stem]
    grid = stem.op.out_grid(ctx, stem.params)  # type: ignore[union-attr]
    _check_grid(grid, "stem")
    stem_grid = grid
    prefix, dim = prefix_tokens(stem.params), spec.stages[0].width
    outputs: list[tuple[int, tuple[int, ...]]] = []  # (width, grid) after each stage
    for i, stage in enumerate(spec.stages):
        path = f"stages[{i}]"
        ctx = OpContext(dim=dim, grid=grid, prefix=prefix, out_dim=stage.width)
        ds = _planned(
            DOWNSAMPLERS, stage.downsample, f"{path}.downsample", "downsample", ctx, bq, stage=i
        )
        ops.append(ds)
        grid, dim = ds.op.out_grid(ctx, ds.params), stage.width  # type: ignore[union-attr]
        prefix = ds.op.out_prefix(ctx, ds.params)  # type: ignore[union-attr]
        _check_grid(grid, f"{path}.downsample")
        here = OpContext(dim=dim, grid=grid, prefix=prefix, out_dim=dim)
        if stage.skip is not None:
            ops.append(_plan_skip(stage.skip, f"{path}.skip", here, outputs, bq, i))
        ops.extend(_plan_stage_blocks(stage, path, here, i))
        outputs.append((dim, grid))
    head_op = _lookup(HEADS, spec.head.name, "head.name")
    sources: tuple[tuple[int, tuple[int, ...]], ...] = ()
    if head_op.sources:  # the input, the stem's output, then every stage's
        sources = ((inp.in_channels, inp.grid), (spec.stages[0].width, stem_grid), *outputs)
    head_ctx = OpContext(
        dim=dim, grid=grid, prefix=prefix, num_classes=inp.num_classes, sources=sources
    )
    ops.append(_planned(HEADS, spec.head, "head", "head", head_ctx, bq))
    check_causal_plan(ops)  # a causal (LM) head: every op before it must be causal
    check_tied_head(ops)
    return ops


def output_shape(spec: ArchSpec, batch: int = 1) -> tuple[int, ...]:
    """The shape of the model's output for ``batch`` inputs, from its head's `OpDef.output`:
    ``(B, classes)``, ``(B, L, vocab)``, ``(B, classes, H, W)`` or ``(B, C, sH, sW)`` (an image
    head's ``scale`` parameter)."""
    head = _lookup(HEADS, spec.head.name, "head.name")
    inp = spec.input
    if head.output == "token":
        return (batch, *inp.grid, inp.num_classes)
    if head.output == "mask":
        return (batch, inp.num_classes, *inp.grid)
    if head.output == "image":
        scale = int(head.complete(spec.head.kwargs, "head.params").get("scale", 1))
        return (batch, inp.in_channels, *(g * scale for g in inp.grid))
    return (batch, inp.num_classes)


def _plan_skip(
    skip: Skip,
    path: str,
    ctx: OpContext,
    outputs: list[tuple[int, tuple[int, ...]]],
    quant: Quant,
    stage: int,
) -> PlannedOp:
    if skip.source >= stage:
        raise SpaceError(
            f"{path}.source", f"must name an earlier stage (0..{stage - 1})", value=skip.source
        )
    width, grid = outputs[skip.source]
    if grid != ctx.grid:
        raise SpaceError(
            f"{path}.source",
            f"stage {skip.source} ends on grid {list(grid)}, this stage starts on "
            f"{list(ctx.grid)}; a skip joins equal grids",
            value=skip.source,
        )
    if skip.merge == "add" and width != ctx.dim:
        raise SpaceError(
            f"{path}.merge",
            f"'add' needs equal widths ({width} vs {ctx.dim}); use 'concat'",
            value=skip.merge,
        )
    params = {"source_dim": width, "merge": skip.merge}
    return PlannedOp(path, "merge", SKIP_MERGE, ctx, params, quant, stage)


def _plan_stage_blocks(stage: Stage, path: str, ctx: OpContext, index: int) -> list[PlannedOp]:
    """The blocks of a stage, with the latent tokens and their read/write steps if it has any."""
    lat = stage.latents
    if lat is None:
        for j, block in enumerate(stage.blocks):
            if block.scope != SCOPE_DATA:
                raise SpaceError(
                    f"{path}.blocks[{j}].scope",
                    "a 'latent' block needs the stage's 'latents' (tokens, group)",
                    value=block.scope,
                )
            out: list[PlannedOp] = []
        for j, block in enumerate(stage.blocks):
            items = _plan_block(
                block, f"{path}.blocks[{j}]", ctx.dim, ctx.grid, ctx.prefix, index, j
            )
            out.extend(_shared(items, stage, j, path) if block.share is not None else items)
        return out

    where = f"{path}.latents"
    if any(g % lat.group for g in ctx.grid):
        raise SpaceError(
            f"{where}.group",
            f"must divide every axis of the stage's grid {list(ctx.grid)}",
            value=lat.group,
        )
    if ctx.dim % lat.head_dim:
        raise SpaceError(
            f"{where}.head_dim", f"does not divide the width {ctx.dim}", value=lat.head_dim
        )
    count = groups_of(ctx.grid, lat.group) * lat.tokens
    latent_ctx = OpContext(dim=ctx.dim, grid=(count,), prefix=0, out_dim=ctx.dim)
    cross = {"tokens": lat.tokens, "group": lat.group, "head_dim": lat.head_dim}
    q = FLOAT
    out = [
        PlannedOp(
            where,
            "latents",
            LATENT_TOKENS,
            ctx,
            {"tokens": lat.tokens, "group": lat.group},
            q,
            index,
        )
    ]
    scope = SCOPE_DATA
    for j, block in enumerate(stage.blocks):
        bpath = f"{path}.blocks[{j}]"
        if block.scope != scope:
            role, op = (
                ("read", LATENT_READ) if block.scope != SCOPE_DATA else ("write", LATENT_WRITE)
            )
            out.append(
                PlannedOp(f"{bpath}.{role}", role, op, ctx, dict(cross), block.quant, index, j)
            )
            scope = block.scope
        here = latent_ctx if scope != SCOPE_DATA else ctx
        items = _plan_block(block, bpath, here.dim, here.grid, here.prefix, index, j)
        out.extend(_shared(items, stage, j, path) if block.share is not None else items)
    if scope != SCOPE_DATA:
        out.append(PlannedOp(f"{where}.write", "write", LATENT_WRITE, ctx, dict(cross), q, index))
    return out


def _plan_block(
    block: Any, path: str, dim: int, grid: tuple[int, ...], prefix: int, stage: int, index: int
) -> list[PlannedOp]:
    _check_quant(block.quant, f"{path}.quant")
    if block.channels is not None:  # the block's ops see only its channel slice
        start, end = block.channels
        if end > dim:
            raise SpaceError(
                f"{path}.channels", f"the slice ends past the width {dim}", value=[start, end]
            )
        dim = end - start
    ctx = OpContext(dim=dim, grid=grid, prefix=prefix, out_dim=dim)
    # the channel branch's view: all tokens, or the prefix tokens alone as a 1-D sequence
    channel_ctx = _channel_context(block, ctx, path)
    q, where = block.quant, {"stage": stage, "block": index}
    norm = Op(block.norm)
    # token mixer 'none': the block has no token branch (no norm, mixer or layer scale)
    token_branch = block.token_mixer.name != "none"
    if not token_branch and block.channel_mixer.name == "none":
        raise SpaceError(
            f"{path}.token_mixer", "a block needs a token mixer or a channel mixer", value="none"
        )
    out = []
    if token_branch:
        out = [
            _planned(NORMS, norm, f"{path}.norm", "norm1", ctx, q, **where),
            _planned(
                TOKEN_MIXERS,
                block.token_mixer,
                f"{path}.token_mixer",
                "token_mixer",
                ctx,
                q,
                **where,
            ),
        ]
    else:  # still checks the name and that no parameters were given
        _planned(TOKEN_MIXERS, block.token_mixer, f"{path}.token_mixer", "token_mixer", ctx, q)
    if block.layer_scale is not None and token_branch:
        out.append(
            PlannedOp(
                f"{path}.layer_scale",
                "layer_scale1",
                None,
                ctx,
                {"init": block.layer_scale},
                q,
                stage,
                index,
            )
        )
    mixer = _planned(
        CHANNEL_MIXERS,
        block.channel_mixer,
        f"{path}.channel_mixer",
        "channel_mixer",
        channel_ctx,
        q,
        **where,
    )
    if block.nested_ratio is not None:
        mixer = _nested(mixer, block.nested_ratio, f"{path}.nested_ratio")
    if mixer.op is not None and mixer.op.name != "none":
        out.append(_planned(NORMS, norm, f"{path}.norm", "norm2", channel_ctx, q, **where))
        out.append(mixer)
        if block.layer_scale is not None:
            out.append(
                PlannedOp(
                    f"{path}.layer_scale",
                    "layer_scale2",
                    None,
                    channel_ctx,
                    {"init": block.layer_scale},
                    q,
                    stage,
                    index,
                )
            )
    if block.repeat != 1:
        out = [dataclasses.replace(item, times=block.repeat) for item in out]
    if token_branch and block.tokens == TOKENS_PREFIX:
        _check_prefix_token_mixer(block, path)
    return out


def _channel_context(block: Any, ctx: OpContext, path: str) -> OpContext:
    """The context of a block's channel branch: the block's own, or, for ``tokens: prefix``,
    the prefix tokens alone as a 1-D sequence without prefix (so any channel mixer's cost
    formula counts exactly the tokens it sees)."""
    if block.tokens != TOKENS_PREFIX:
        return ctx
    if ctx.prefix < 1:
        raise SpaceError(
            f"{path}.tokens",
            "'prefix' needs prefix (class) tokens here: a stem with cls_token or an 'embed' "
            "downsampler before this block",
            value=block.tokens,
        )
    return OpContext(dim=ctx.dim, grid=(ctx.prefix,), prefix=0, out_dim=ctx.dim)


def _check_prefix_token_mixer(block: Any, path: str) -> None:
    """A ``tokens: prefix`` block keeps only the prefix rows of its token mixer's update, so the
    mixer must produce them: grid-layout mixers give prefix tokens a zero update."""
    op = TOKEN_MIXERS.get(block.token_mixer.name)
    if op.layout != LAYOUT_TOKENS:
        raise SpaceError(
            f"{path}.tokens",
            f"'prefix' needs a token mixer that updates prefix tokens (layout 'tokens'); "
            f"{op.name!r} has layout {op.layout!r}",
            value=block.tokens,
        )


def _shared(items: list[PlannedOp], stage: Stage, j: int, path: str) -> list[PlannedOp]:
    """The ops of block ``j``, which reuses the weights of block ``share``: MACs, no params."""
    k = stage.blocks[j].share
    where = f"{path}.blocks[{j}].share"
    if k is None or not 0 <= k < j:
        raise SpaceError(where, f"must name an earlier block of the stage (0..{j - 1})", value=k)
    if dataclasses.replace(stage.blocks[j], share=None) != dataclasses.replace(
        stage.blocks[k], share=None
    ):
        raise SpaceError(
            where, f"block {k} differs from this block; only equal blocks share", value=k
        )
    if stage.blocks[k].share is not None:
        raise SpaceError(
            where, f"block {k} shares weights itself; name the block it shares with", value=k
        )
    return [dataclasses.replace(item, op=shared_view(item.op)) for item in items]


def _nested(mixer: PlannedOp, parent_ratio: float, path: str) -> PlannedOp:
    """The channel mixer of a block with ``nested_ratio``: an ``mlp`` run on a prefix of its
    parent's hidden units."""
    if mixer.op is None or mixer.op.name != "mlp":
        name = mixer.op.name if mixer.op is not None else None
        raise SpaceError(path, "nested prefixes apply to an 'mlp' channel mixer", value=name)
    if mixer.params["ratio"] > parent_ratio:
        raise SpaceError(
            path,
            f"must be >= the channel mixer's ratio {mixer.params['ratio']} (the prefix used)",
            value=parent_ratio,
        )
    params = {**mixer.params, "parent_ratio": parent_ratio}
    return dataclasses.replace(mixer, op=NESTED_MLP, params=params)


def validate_spec(spec: ArchSpec, *, source: str | None = None) -> ArchSpec:
    """Checks ``spec`` against the registries; returns it unchanged or raises `SpaceError`."""
    try:
        plan(spec)
    except SpaceError as err:
        if source:
            raise err.with_source(source) from None
        raise
    return spec
