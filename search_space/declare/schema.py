"""Parsing a space declaration (a dict from YAML, JSON or Python) into concrete choice lists.

Every error names the field path and what is allowed; `SearchSpace.from_dict` adds the file name.
The parser also checks the structural rules of every op against every width and token grid the
space can produce, so a space that loads can only produce valid specs: a rule such as "head_dim
divides the width" is reported, never silently repaired.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from search_space.declare.options import as_choices, expand_list, expand_menu, lookup, select
from search_space.declare.patterns import Pattern
from search_space.errors import SpaceError
from search_space.ops import (
    CHANNEL_MIXERS,
    DOWNSAMPLERS,
    HEADS,
    NORMS,
    STEMS,
    TOKEN_MIXERS,
    OpContext,
)
from search_space.ops.causal import check_causal_space
from search_space.ops.stems import prefix_tokens
from search_space.spec import (
    ALLOWED_BITS,
    FLOAT_BITS,
    GRANULARITIES,
    MAX_DEPTH,
    MAX_INT,
    MAX_WIDTH,
    Block,
    InputSpec,
    Latents,
    Op,
    Quant,
    Skip,
    parse_block,
    parse_input,
    parse_latents,
    parse_skip,
)

ANALYTIC_METRICS = ("params", "macs", "bytes", "bitops", "activation_bytes")
TOP_KEYS = {
    "name",
    "description",
    "input",
    "stem",
    "num_stages",
    "stages",
    "head",
    "token_mixers",
    "channel_mixers",
    "norms",
    "layer_scale",
    "quantization",
    "constraints",
}
STAGE_KEYS = {
    "depth", "width", "downsample", "token_mixers", "channel_mixers", "norms", "patterns", "repeat",
    "nested_ratio", "skip",
}  # fmt: skip
# a fixed stage lists its blocks verbatim (spec format); only its width and downsampler vary
FIXED_STAGE_KEYS = {"width", "downsample", "blocks", "skip", "latents"}
QUANT_SCOPES = ("per_stage", "per_block")


@dataclass(frozen=True)
class Constraint:
    """A declared bound on a metric; analytic metrics are checked by the space itself, others
    (``latency_ms@<device>``) by a predictor the caller supplies."""

    metric: str
    min: float | None = None
    max: float | None = None

    @property
    def analytic(self) -> bool:
        return self.metric in ANALYTIC_METRICS

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return f"{self.metric} {' and '.join(parts)}"


@dataclass(frozen=True)
class StageDecl:
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    downsamples: tuple[Op, ...]
    norms: tuple[str, ...]
    channel_mixers: tuple[Op, ...]
    mixers: tuple[Op, ...]  # every token mixer any pattern of this stage can use
    patterns: tuple[Pattern, ...]
    fixed: tuple[Block, ...] | None = None  # the blocks of a fixed stage
    repeats: tuple[int, ...] | None = None  # choices of every block's `repeat` (weight sharing)
    nested_ratio: float | None = None  # every block's MLP is a prefix of this parent (MatFormer)
    skip: Skip | None = None
    latents: Latents | None = None

    @property
    def max_depth(self) -> int:
        return max(self.depths)


@dataclass(frozen=True)
class SpaceDecl:
    name: str
    description: str
    input: InputSpec
    stems: tuple[Op, ...]
    num_stages: tuple[int, ...]
    stages: tuple[StageDecl, ...]
    heads: tuple[Op, ...]
    layer_scales: tuple[float | None, ...]
    quant_scope: str
    quants: tuple[Quant, ...]
    boundary_quant: Quant
    constraints: tuple[Constraint, ...] = field(default=())


def _mapping(data: Any, path: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SpaceError(path or "<root>", "must be a mapping", value=data)
    unknown = sorted(set(data) - keys)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise SpaceError(where, f"unknown key; allowed: {', '.join(sorted(keys))}")
    return dict(data)


def _ints(value: Any, path: str, minimum: int, maximum: int = MAX_INT) -> tuple[int, ...]:
    out = []
    for v in as_choices(value, path):
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise SpaceError(path, f"choices must be integers >= {minimum}", value=v)
        if v > maximum:
            raise SpaceError(path, f"choices must be at most {maximum:,}", value=v)
        out.append(v)
    return tuple(dict.fromkeys(out))


def _norms(value: Any, path: str) -> tuple[str, ...]:
    names = as_choices(value, path)
    for i, n in enumerate(names):
        if n not in NORMS:
            raise SpaceError(
                f"{path}[{i}]", f"unknown norm; known: {', '.join(NORMS.names())}", value=n
            )
    return tuple(dict.fromkeys(names))


def _patterns(
    value: Any, path: str, mixers: list[Op], menu: dict[str, list[Op]]
) -> tuple[list[Pattern], list[Op]]:
    """Parses a stage's patterns; returns them and the stage's full mixer list."""
    all_mixers = list(mixers)

    def indices(ops: list[Op]) -> tuple[int, ...]:
        for op in ops:
            if op not in all_mixers:
                all_mixers.append(op)
        return tuple(all_mixers.index(op) for op in ops)

    base = indices(mixers)
    out: list[Pattern] = []
    for i, entry in enumerate(as_choices(value, path)):
        where = f"{path}[{i}]"
        if entry in ("uniform", "free"):
            out.append(Pattern(entry, (), base))
            continue
        if not isinstance(entry, Mapping):
            raise SpaceError(
                where,
                "must be 'uniform', 'free', {last_k: [...], tail: [...]} or "
                "{periodic: [...], every: [...]}",
                value=entry,
            )
        kind = next((k for k in ("last_k", "periodic") if k in entry), None)
        if kind is None:
            raise SpaceError(
                where, "unknown pattern; allowed: uniform, last_k, periodic, free", value=entry
            )
        other_key = "tail" if kind == "last_k" else "every"
        d = _mapping(entry, where, {kind, other_key})
        values = _ints(d[kind], f"{where}.{kind}", 1)
        other = (
            select(menu, d[other_key], f"{where}.{other_key}", TOKEN_MIXERS)
            if (other_key in d)
            else mixers
        )
        out.append(Pattern(kind, values, base, indices(other)))
    return list(dict.fromkeys(out)), all_mixers


def _quantization(value: Any, path: str) -> tuple[str, tuple[Quant, ...], Quant]:
    if value is None:
        return "per_stage", (Quant(),), Quant()
    d = _mapping(value, path, {"scope", "weight_bits", "act_bits", "granularity", "boundary"})
    scope = d.get("scope", "per_stage")
    if scope not in QUANT_SCOPES:
        raise SpaceError(f"{path}.scope", f"must be one of {list(QUANT_SCOPES)}", value=scope)

    def bits(key: str) -> tuple[int, ...]:
        chosen = _ints(d.get(key, [FLOAT_BITS]), f"{path}.{key}", 1)
        for b in chosen:
            if b not in ALLOWED_BITS:
                raise SpaceError(
                    f"{path}.{key}", f"bits must be in {list(ALLOWED_BITS)} (32 = float)", value=b
                )
        return chosen

    grans = as_choices(d.get("granularity", ["per_tensor"]), f"{path}.granularity")
    for g in grans:
        if g not in GRANULARITIES:
            raise SpaceError(
                f"{path}.granularity", f"must be one of {list(GRANULARITIES)}", value=g
            )
    quants = []
    for w in bits("weight_bits"):
        for a in bits("act_bits"):
            for g in grans:
                # granularity means nothing for float layers: one canonical float policy
                quant = Quant(w, a, "per_tensor" if w == a == FLOAT_BITS else g)
                quants.append(quant)
    boundary = Quant()
    if "boundary" in d:
        b = _mapping(d["boundary"], f"{path}.boundary", {"weight_bits", "act_bits", "granularity"})
        wb, ab = b.get("weight_bits", FLOAT_BITS), b.get("act_bits", FLOAT_BITS)
        for key, v in (("weight_bits", wb), ("act_bits", ab)):
            if v not in ALLOWED_BITS:
                raise SpaceError(
                    f"{path}.boundary.{key}", f"bits must be in {list(ALLOWED_BITS)}", value=v
                )
        boundary = Quant(wb, ab, b.get("granularity", "per_tensor"))
    return scope, tuple(dict.fromkeys(quants)), boundary


def _constraints(value: Any, path: str) -> tuple[Constraint, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpaceError(path, "must be a mapping of metric to {min, max}", value=value)
    out = []
    for metric, bound in value.items():
        where = f"{path}.{metric}"
        if metric not in ANALYTIC_METRICS and not str(metric).startswith("latency_ms@"):
            raise SpaceError(
                where,
                f"unknown metric; allowed: {', '.join(ANALYTIC_METRICS)}, latency_ms@<device>",
            )
        b = _mapping(bound, where, {"min", "max"})
        for key, v in b.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise SpaceError(f"{where}.{key}", "must be a finite number", value=v)
        if not b:
            raise SpaceError(where, "needs min and/or max")
        if "min" in b and "max" in b and b["min"] > b["max"]:
            raise SpaceError(where, "min is larger than max", value=b)
        out.append(Constraint(str(metric), b.get("min"), b.get("max")))
    return tuple(out)


def parse_space(data: Any) -> SpaceDecl:
    d = _mapping(data, "", TOP_KEYS)
    for key in ("input", "stem", "stages", "head", "token_mixers"):
        if key not in d:
            raise SpaceError(key, "is required")
    inp = parse_input(d["input"])
    stems = tuple(expand_list(STEMS, d["stem"], "stem"))
    heads = tuple(expand_list(HEADS, d["head"], "head"))
    mixer_menu = expand_menu(TOKEN_MIXERS, d["token_mixers"], "token_mixers")
    channel_menu = expand_menu(
        CHANNEL_MIXERS, d.get("channel_mixers", {"mlp": {}}), "channel_mixers"
    )
    norms = _norms(d.get("norms", ["layernorm"]), "norms")
    stages_data = d["stages"]
    if not isinstance(stages_data, list) or not stages_data:
        raise SpaceError("stages", "must be a non-empty list of stages", value=stages_data)
    num_stages = _ints(d.get("num_stages", [len(stages_data)]), "num_stages", 1)
    if max(num_stages) > len(stages_data):
        raise SpaceError(
            "num_stages", f"at most {len(stages_data)} (the stages declared)", value=max(num_stages)
        )
    stages = tuple(
        _stage(s, f"stages[{i}]", mixer_menu, channel_menu, norms)
        for i, s in enumerate(stages_data)
    )
    layer_scales = tuple(
        dict.fromkeys(
            None if v is None else float(v) for v in _layer_scales(d.get("layer_scale", [None]))
        )
    )
    scope, quants, boundary = _quantization(d.get("quantization"), "quantization")
    for key in ("name", "description"):
        if key in d and not isinstance(d[key], str):
            raise SpaceError(
                key, "must be a string (quote it if it looks like a number)", value=d[key]
            )
    decl = SpaceDecl(
        name=str(d.get("name", "space")),
        description=str(d.get("description", "")),
        input=inp,
        stems=stems,
        num_stages=num_stages,
        stages=stages,
        heads=heads,
        layer_scales=layer_scales,
        quant_scope=scope,
        quants=quants,
        boundary_quant=boundary,
        constraints=_constraints(d.get("constraints"), "constraints"),
    )
    check_rules(decl)
    check_causal_space(decl)  # a causal (LM) head: every op choice must be causal
    return decl


def _layer_scales(value: Any) -> list[Any]:
    choices = as_choices(value, "layer_scale")
    for v in choices:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
            raise SpaceError("layer_scale", "choices must be positive numbers or null", value=v)
    return choices


def _complete_block(block: Block, path: str) -> Block:
    """The block with every op parameter written out, as declared spaces write ops."""
    refs = []
    for registry, ref, key in (
        (TOKEN_MIXERS, block.token_mixer, "token_mixer"),
        (CHANNEL_MIXERS, block.channel_mixer, "channel_mixer"),
    ):
        op = lookup(registry, ref.name, f"{path}.{key}.name")
        refs.append(Op.of(ref.name, op.complete(ref.kwargs, f"{path}.{key}.params")))
    if block.norm not in NORMS:
        raise SpaceError(f"{path}.norm", f"unknown norm; known: {', '.join(NORMS.names())}")
    return dataclasses.replace(block, token_mixer=refs[0], channel_mixer=refs[1])


def _fixed_stage(d: dict[str, Any], path: str) -> StageDecl:
    """A stage whose blocks are given verbatim: heterogeneous blocks (per-block norms, channel
    mixers, layer scales) and structural fields (repeat, share, nested_ratio, scope), with an
    optional skip and latent tokens. Only the width and the downsampler are decisions."""
    for key in ("width", "blocks"):
        if key not in d:
            raise SpaceError(f"{path}.{key}", "is required")
    blocks_data = d["blocks"]
    if not isinstance(blocks_data, list) or not blocks_data:
        raise SpaceError(f"{path}.blocks", "must be a non-empty list of blocks", value=blocks_data)
    blocks = tuple(
        _complete_block(parse_block(b, f"{path}.blocks[{j}]"), f"{path}.blocks[{j}]")
        for j, b in enumerate(blocks_data)
    )
    mixers = tuple(dict.fromkeys(b.token_mixer for b in blocks))
    return StageDecl(
        depths=(len(blocks),),
        widths=_ints(d["width"], f"{path}.width", 1, MAX_WIDTH),
        downsamples=tuple(
            expand_list(DOWNSAMPLERS, d.get("downsample", "none"), f"{path}.downsample")
        ),
        norms=tuple(dict.fromkeys(b.norm for b in blocks)),
        channel_mixers=tuple(dict.fromkeys(b.channel_mixer for b in blocks)),
        mixers=mixers,
        patterns=(),
        fixed=blocks,
        skip=parse_skip(d.get("skip"), f"{path}.skip"),
        latents=parse_latents(d.get("latents"), f"{path}.latents"),
    )


def _nested(d: dict[str, Any], path: str, channel_mixers: list[Op]) -> float | None:
    """A stage's ``nested_ratio``: its MLPs are prefixes of one parent MLP of this ratio."""
    value = d.get("nested_ratio")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SpaceError(f"{path}.nested_ratio", "must be a positive number", value=value)
    for ref in channel_mixers:
        if ref.name != "mlp" or ref.kwargs["ratio"] > value:
            raise SpaceError(
                f"{path}.channel_mixers",
                f"with nested_ratio {value}, every channel mixer is an 'mlp' with ratio <= {value}",
                value=ref.label(),
            )
    return float(value)


def _stage(
    data: Any,
    path: str,
    mixer_menu: dict[str, list[Op]],
    channel_menu: dict[str, list[Op]],
    norms: tuple[str, ...],
) -> StageDecl:
    if isinstance(data, Mapping) and "blocks" in data:
        return _fixed_stage(_mapping(data, path, FIXED_STAGE_KEYS), path)
    d = _mapping(data, path, STAGE_KEYS)
    for key in ("depth", "width"):
        if key not in d:
            raise SpaceError(f"{path}.{key}", "is required")
    mixers = select(
        mixer_menu, d.get("token_mixers", list(mixer_menu)), f"{path}.token_mixers", TOKEN_MIXERS
    )
    patterns, all_mixers = _patterns(
        d.get("patterns", ["uniform"]), f"{path}.patterns", mixers, mixer_menu
    )
    channel_mixers = select(
        channel_menu,
        d.get("channel_mixers", list(channel_menu)),
        f"{path}.channel_mixers",
        CHANNEL_MIXERS,
    )
    return StageDecl(
        depths=_ints(d["depth"], f"{path}.depth", 1, MAX_DEPTH),
        widths=_ints(d["width"], f"{path}.width", 1, MAX_WIDTH),
        downsamples=tuple(
            expand_list(DOWNSAMPLERS, d.get("downsample", "none"), f"{path}.downsample")
        ),
        norms=_norms(d["norms"], f"{path}.norms") if "norms" in d else norms,
        channel_mixers=tuple(channel_mixers),
        mixers=tuple(all_mixers),
        patterns=tuple(patterns),
        repeats=_ints(d["repeat"], f"{path}.repeat", 1, MAX_DEPTH) if "repeat" in d else None,
        nested_ratio=_nested(d, path, channel_mixers),
        skip=parse_skip(d.get("skip"), f"{path}.skip"),  # a U-Net decoder stage's encoder input
    )


def check_rules(decl: SpaceDecl) -> None:
    """Checks every op's structural rules against every width, grid and prefix it can meet."""
    inp = decl.input
    first_widths = decl.stages[0].widths
    contexts: set[tuple[tuple[int, ...], int]] = set()
    for i, stem in enumerate(decl.stems):
        op = STEMS.get(stem.name)
        for w in first_widths:
            ctx = OpContext(dim=inp.in_channels, grid=inp.grid, out_dim=w)
            op.check_rules(ctx, stem.kwargs, f"stem[{i}]")
        grid = op.out_grid(OpContext(dim=inp.in_channels, grid=inp.grid, out_dim=1), stem.kwargs)
        _grid_ok(grid, f"stem[{i}]")
        contexts.add((grid, prefix_tokens(stem.kwargs)))
    prev_widths = first_widths
    for s, stage in enumerate(decl.stages):
        path = f"stages[{s}]"
        after: set[tuple[tuple[int, ...], int]] = set()
        for j, ds in enumerate(stage.downsamples):
            op = DOWNSAMPLERS.get(ds.name)
            # the stem already produces stage 0's width; later stages change from the previous
            pairs = (
                [(w, w) for w in stage.widths]
                if s == 0
                else [(w_in, w) for w_in in prev_widths for w in stage.widths]
            )
            for grid, prefix in contexts:
                for w_in, w in pairs:
                    ctx = OpContext(dim=w_in, grid=grid, prefix=prefix, out_dim=w)
                    op.check_rules(ctx, ds.kwargs, f"{path}.downsample[{j}]")
                    new_grid = op.out_grid(ctx, ds.kwargs)
                    _grid_ok(new_grid, f"{path}.downsample[{j}]")
                    after.add((new_grid, op.out_prefix(ctx, ds.kwargs)))
        contexts = after
        for grid, prefix in contexts:
            for w in stage.widths:
                ctx = OpContext(dim=w, grid=grid, prefix=prefix, out_dim=w)
                for registry, ops, key in (
                    (TOKEN_MIXERS, stage.mixers, "token_mixers"),
                    (CHANNEL_MIXERS, stage.channel_mixers, "channel_mixers"),
                ):
                    for op_ref in ops:
                        registry.get(op_ref.name).check_rules(
                            ctx, op_ref.kwargs, f"{path}.{key}[{op_ref.label()} at width {w}]"
                        )
        prev_widths = stage.widths
        if s + 1 in decl.num_stages:
            _check_heads(decl, contexts, stage.widths)


def _check_heads(
    decl: SpaceDecl, contexts: set[tuple[tuple[int, ...], int]], widths: tuple[int, ...]
) -> None:
    for k, head in enumerate(decl.heads):
        op = HEADS.get(head.name)
        for grid, prefix in contexts:
            for w in widths:
                ctx = OpContext(dim=w, grid=grid, prefix=prefix, num_classes=decl.input.num_classes)
                op.check_rules(ctx, head.kwargs, f"head[{k}]")


def _grid_ok(grid: tuple[int, ...], path: str) -> None:
    if any(g < 1 for g in grid):
        raise SpaceError(
            path,
            "the token grid vanishes here; use fewer downsamplings or a larger input",
            value=list(grid),
        )
