"""Spaces declared around a spec: the spec is the centre, each stage's depth and width range
around it, its mixers (plus any alternatives) are the stage's choices.

`space_around` writes an ordinary space declaration (the dict a YAML file would hold) and loads
it, so the result is a `SearchSpace` like any other and ``contains(centre)`` holds by
construction. In a space file the same thing is written ``around: {zoo: convnext_t, ...}``
(see `declaration_around` and docs/spaces.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from search_space.errors import SpaceError
from search_space.ops import TOKEN_MIXERS, OpContext
from search_space.plan import plan
from search_space.spec import MAX_DEPTH, ArchSpec, Block, Op, Stage

AROUND_KEYS = {"zoo", "depth", "width", "mixers", "name", "constraints"}
WIDTH_FACTORS = (0.75, 1.0, 1.25)
MAX_FACTOR = 64.0  # a width factor beyond this can only be a mistake


def _op_entry(ref: Op) -> dict[str, Any]:
    return {ref.name: {k: v for k, v in ref.to_dict()["params"].items()}}


def _stage_contexts(spec: ArchSpec) -> list[tuple[tuple[int, ...], int]]:
    """(grid, prefix tokens) each stage's blocks see: what its downsampler produces."""
    out = []
    for item in plan(spec):
        if item.role == "downsample" and item.op is not None:
            op, ctx, params = item.op, item.ctx, item.params
            out.append((op.out_grid(ctx, params), op.out_prefix(ctx, params)))
    return out


def _widths(
    width: int, factors: Sequence[float], mixers: Sequence[Op], grid: tuple[int, ...], prefix: int
) -> list[int]:
    """Widths near ``width`` (multiples of 8) at which every mixer of the stage is valid."""
    out = {width}
    for f in factors:
        w = max(8, round(width * f / 8) * 8)
        ok = True
        for ref in mixers:
            opdef = TOKEN_MIXERS.get(ref.name)
            try:
                opdef.check_rules(
                    OpContext(dim=w, grid=grid, prefix=prefix, out_dim=w),
                    opdef.complete(ref.kwargs, "mixer"),
                    "mixer",
                )
            except SpaceError:
                ok = False
                break
        if ok:
            out.add(w)
    return sorted(out)


def _homogeneous(st: Stage) -> bool:
    """True when a ranged stage (one norm, channel mixer and layer scale; plain blocks) can
    express ``st``; otherwise it is declared as a fixed stage (blocks verbatim)."""
    first = st.blocks[0]
    plain = all(
        b == Block(b.token_mixer, first.channel_mixer, first.norm, first.layer_scale, first.quant)
        for b in st.blocks
    )
    return plain and st.skip is None and st.latents is None


def _fixed(st: Stage, widths: list[int], down: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "width": widths,
        "downsample": down,
        "blocks": [b.to_dict() for b in st.blocks],
    }
    if st.skip is not None:
        out["skip"] = st.skip.to_dict()
    if st.latents is not None:
        out["latents"] = st.latents.to_dict()
    return out


def declaration_around(
    centre: ArchSpec,
    *,
    depth: int = 1,
    width: Sequence[float] = WIDTH_FACTORS,
    mixers: Mapping[str, Mapping[str, Any]] | None = None,
    name: str = "around",
    constraints: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The space declaration around ``centre`` (see `space_around` for the arguments)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH:
        raise SpaceError("around.depth", f"must be an integer in [0, {MAX_DEPTH}]", value=depth)
    factors: list[Any] = list(width) if isinstance(width, list | tuple) else [width]
    for f in factors:
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= MAX_FACTOR:
            raise SpaceError(
                "around.width", f"must be width factors in (0, {MAX_FACTOR}]", value=width
            )
    width = factors
    if mixers is not None and not isinstance(mixers, Mapping):
        raise SpaceError(
            "around.mixers", "must be a mapping {mixer: {param: choices}}", value=mixers
        )
    if not isinstance(name, str):
        raise SpaceError("around.name", "must be a string", value=name)
    extra = dict(mixers or {})
    menu: dict[str, dict[str, list[Any]]] = {}

    def note(ref: Op) -> None:
        params = menu.setdefault(ref.name, {})
        for k, v in ref.to_dict()["params"].items():
            values = params.setdefault(k, [])
            if v not in values:
                values.append(v)

    contexts = _stage_contexts(centre)
    ranged = [_homogeneous(st) for st in centre.stages]
    scales = [st.blocks[0].layer_scale for st, ok in zip(centre.stages, ranged, strict=True) if ok]
    # one layer scale for the whole space: stages with another one are declared fixed
    scale = scales[0] if scales else None
    stages = []
    for i, st in enumerate(centre.stages):
        grid, prefix = contexts[i]
        used = list(dict.fromkeys(b.token_mixer for b in st.blocks))
        widths = _widths(st.width, width, used, grid, prefix)
        if st.latents is not None:
            widths = [w for w in widths if w % st.latents.head_dim == 0]
        if st.skip is not None and st.skip.merge == "add":
            widths = [st.width]
        down = [{"name": st.downsample.name, **st.downsample.to_dict()["params"]}]
        if not ranged[i] or st.blocks[0].layer_scale != scale:
            stages.append(_fixed(st, widths, down))
            continue
        for ref in used:
            note(ref)
        entries = [_op_entry(ref) for ref in used] + [{k: dict(v)} for k, v in extra.items()]
        varied = len(used) > 1 or bool(extra)
        stages.append(
            {
                "depth": list(range(max(1, st.depth - depth), st.depth + depth + 1)),
                "width": widths,
                "downsample": down,
                "norms": [st.blocks[0].norm],
                "channel_mixers": [_op_entry(st.blocks[0].channel_mixer)],
                "token_mixers": entries,
                "patterns": ["free" if varied else "uniform"],
            }
        )
    # a 'grow' downsampler appends channels: every width choice must exceed the previous
    # stage's (the centre's own widths always do)
    for i, st in enumerate(centre.stages):
        if i and st.downsample.name == "none":  # keeps the width: both stages keep theirs
            stages[i - 1]["width"] = stages[i]["width"] = [st.width]
        if i and st.downsample.name == "grow":
            before, here = stages[i - 1], stages[i]
            before["width"] = [w for w in before["width"] if w < st.width]
            here["width"] = [w for w in here["width"] if w > max(before["width"])]
    if not menu:  # every stage fixed: the menu still needs one entry
        note(centre.blocks[0].token_mixer)
    decl: dict[str, Any] = {
        "name": name,
        "description": "declared around a centre spec",
        "input": centre.input.to_dict(),
        "stem": [{"name": centre.stem.name, **centre.stem.to_dict()["params"]}],
        "num_stages": [len(centre.stages)],
        "token_mixers": {**menu, **{k: dict(v) for k, v in extra.items()}},
        "channel_mixers": {b.channel_mixer.name: {} for b in centre.blocks},
        "layer_scale": [scale],
        "stages": stages,
        "head": [{"name": centre.head.name, **centre.head.to_dict()["params"]}],
    }
    if constraints:
        decl["constraints"] = dict(constraints)
    return decl


def space_around(
    centre: ArchSpec | str,
    *,
    depth: int = 1,
    width: Sequence[float] = WIDTH_FACTORS,
    mixers: Mapping[str, Mapping[str, Any]] | None = None,
    name: str | None = None,
    constraints: Mapping[str, Any] | None = None,
) -> Any:
    """A `SearchSpace` centred on a spec or a zoo model, which it contains.

    Args:
        centre: an `ArchSpec` or a zoo model name.
        depth: each stage's depth ranges over ``centre depth +- depth`` (at least 1).
        width: factors applied to each stage's width (rounded to multiples of 8; widths where a
            stage's mixer rules fail, e.g. a head size that does not divide, are left out).
        mixers: extra token mixers offered in every stage, ``{name: {param: choices}}``; stages
            with more than one mixer choose per block (pattern ``free``).
        name: the space's name (default ``around-<model>``).
        constraints: as in a space file, e.g. ``{"params": {"max": 3e7}}``.

    Stages a ranged stage cannot express (blocks that differ in norm, channel mixer or layer
    scale; structural fields such as ``share``, ``repeat``, ``nested_ratio``, latent tokens or a
    skip) are declared as fixed stages: their blocks verbatim, their width ranging.
    """
    from search_space.declare.space import SearchSpace

    if isinstance(centre, str):
        from search_space import zoo

        label, spec = centre, zoo.get(centre)
    else:
        label, spec = "spec", centre
    decl = declaration_around(
        spec,
        depth=depth,
        width=width,
        mixers=mixers,
        name=name or f"around-{label}",
        constraints=constraints,
    )
    return SearchSpace.from_dict(decl, source=f"around:{label}")
