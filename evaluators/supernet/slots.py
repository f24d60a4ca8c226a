"""Maps every parameter of a built subnet to its slot in the supernet's shared weights.

The builder's `MixNet` names its parameters ``stem.*``, ``head.*`` and, per stage, either
``stages.{i}.0.*`` (the downsampler) and ``stages.{i}.{j+1}.*`` (block j) for a plain stage, or
``stages.{i}.downsample.*``, ``.merge.*`` (a skip), ``.latents.*`` and ``.steps.{t}.*`` (blocks
and the latents' read/write steps) for a structured one. A block is ``token.*`` / ``channel.*``
(a block whose token mixer is ``none`` is its channel branch alone), possibly wrapped
(``block.`` for a repeated or channel-sliced block, ``branch.`` for a prefix-token branch); a
branch holds ``norm.*``, ``mixer.*`` and ``scale.gamma``. Each name becomes a `Slot` key:

    s{i}.b{j}.token.norm.{norm}/{param}   the branch's norm, shared by every mixer type
    s{i}.b{j}.token.{op key}/{param}      the mixer and its layer scale, one set per op key
    s{i}.down.{op key}/{param}, stem.{op key}/{param}, head.{op key}/{param}
    s{i}.merge.{op key}/{param}, s{i}.latents.{op key}/{param}, s{i}[.b{j}].read/write...

where the op key is the op name with its non-elastic parameters (and the grid or width where its
sharing rule asks for them), so elastic variants of one op land on one tensor. A block that
shares another block's weights (``share``) is the same module, so its parameters are that
block's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from evaluators.supernet.rules import GRID, UNSHARED, WIDTH, Sharing, Slot
from search_space.errors import SpaceError
from search_space.ops.base import OpDef
from search_space.ops.sharing import NEIGHBOURS, resolve
from search_space.plan import PlannedOp, plan
from search_space.spec import ArchSpec

KINDS = ("stem", "downsample", "token_mixer", "channel_mixer", "head")
WRAPPERS = ("block.", "branch.")  # Repeated / ChannelSlice, PrefixOnly: no parameters of their own


def rule_for(op: OpDef, params: Mapping[str, Any], *, strict: bool) -> Sharing:
    """The op's sharing rule for these parameters; a strict supernet raises `SpaceError` for an
    op that declares none (`OpDef.sharing`)."""
    if op.sharing is not None:
        return resolve(op.sharing, params)
    if strict:
        raise SpaceError(
            op.kind,
            f"{op.kind} {op.name!r} declares no weight-sharing rule (OpDef.sharing, see "
            "docs/extending.md); pass strict=False for one weight set per shape",
            value=op.name,
        )
    return UNSHARED


def place_of(item: PlannedOp) -> str:
    """The place in the network a planned op's weights belong to (see the module docstring)."""
    role, i, j = item.role, item.stage, item.block
    if role in ("stem", "head"):
        return role
    if role == "downsample":
        return f"s{i}.down"
    if role in ("token_mixer", "channel_mixer"):
        return f"s{i}.b{j}.{role.partition('_')[0]}"
    if role in ("norm1", "norm2"):  # a branch's norm: the slot `_block_param` names
        return f"s{i}.b{j}.{'token' if role == 'norm1' else 'channel'}.norm"
    if role in ("read", "write") and j >= 0:
        return f"s{i}.b{j}.{role}"
    return f"s{i}.{role}"  # merge, latents, the final write


def op_key(item: PlannedOp, rule: Sharing) -> str:
    assert item.op is not None
    fixed = ",".join(f"{k}={v}" for k, v in sorted(item.params.items()) if k not in rule.elastic)
    extra = ""
    if GRID in rule.keyed_by:
        extra += f"@g{'x'.join(map(str, item.ctx.grid))}p{item.ctx.prefix}"
    if WIDTH in rule.keyed_by:
        extra += f"@d{item.ctx.dim}-{item.ctx.out_dim}"
    return f"{item.op.name}({fixed}){extra}"


def _chunk(
    rule: Sharing, sub: str, rank: int, params: Mapping[str, Any]
) -> tuple[int, int | tuple[int, ...]] | None:
    for prefix, (axis, pieces) in rule.chunks.items():
        if sub.startswith(prefix):
            if pieces == NEIGHBOURS:
                return axis, 2**rank
            if isinstance(pieces, str):
                return axis, int(params[pieces])
            return axis, pieces
    return None


def _centred(rule: Sharing, sub: str) -> int | None:
    return next((axis for prefix, axis in rule.centred.items() if sub.startswith(prefix)), None)


def slots(spec: ArchSpec, model: nn.Module, *, strict: bool) -> dict[str, Slot]:
    """Parameter name of ``model`` (the builder's model of ``spec``) -> its shared slot."""
    items = plan(spec)
    by_place = {(item.stage, item.block, item.role): item for item in items}
    rank = len(spec.input.grid)
    convs = {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.conv._ConvNd)
    }
    stages = getattr(model, "stages", [])
    out: dict[str, Slot] = {}
    for name, _ in model.named_parameters():
        item, sub = _locate(spec, stages, by_place, name)
        if item is None:  # a block's norm: ``sub`` is its slot key
            out[name] = Slot(sub, None, name in convs)
            continue
        assert item.op is not None
        rule = rule_for(item.op, item.params, strict=strict)
        out[name] = Slot(
            f"{place_of(item)}.{op_key(item, rule)}/{sub}",
            _chunk(rule, sub, rank, item.params),
            name in convs,
            _centred(rule, sub),
        )
    return out


Places = dict[tuple[int, int, str], PlannedOp]


def _locate(
    spec: ArchSpec, stages: Any, by_place: Places, name: str
) -> tuple[PlannedOp | None, str]:
    """The planned op a parameter belongs to and its name inside the op's module; for a block's
    norm, (None, the norm's slot key)."""
    head, _, rest = name.partition(".")
    if head in ("stem", "head"):
        return by_place[(-1, -1, head)], rest
    if head != "stages":
        raise SpaceError("spec", "the supernet cannot place this parameter", value=name)
    index, _, rest = rest.partition(".")
    i = int(index)
    first, _, rest = rest.partition(".")
    if first.isdigit():  # a plain stage: downsampler, then the blocks
        if first == "0":
            return by_place[(i, -1, "downsample")], rest
        return _block_param(spec, by_place, i, int(first) - 1, rest, name)
    if first in ("downsample", "merge", "latents"):
        return by_place[(i, -1, first)], rest
    if first != "steps":
        raise SpaceError("spec", "the supernet cannot place this parameter", value=name)
    step, _, rest = rest.partition(".")
    kinds: list[str] = stages[i].kinds
    t = int(step)
    blocks_before = sum(k not in ("read", "write") for k in kinds[:t])
    if kinds[t] not in ("read", "write"):
        return _block_param(spec, by_place, i, blocks_before, rest, name)
    # a read/write step belongs to the block after it (the one that changes scope), if any
    after = blocks_before if any(k not in ("read", "write") for k in kinds[t:]) else -1
    return by_place[(i, after, kinds[t])], rest


def _block_param(
    spec: ArchSpec, by_place: Places, stage: int, block: int, sub: str, name: str
) -> tuple[PlannedOp | None, str]:
    while sub.startswith(WRAPPERS):
        sub = sub.partition(".")[2]
    if sub.startswith(("token.", "channel.")):
        branch, _, sub = sub.partition(".")
    else:  # a block without token mixer is its channel branch
        branch = "channel"
    while sub.startswith(WRAPPERS):
        sub = sub.partition(".")[2]
    if not sub.startswith(("norm.", "mixer.", "scale.")):
        raise SpaceError("stages", "the supernet cannot place this block parameter", value=name)
    if sub.startswith("norm."):
        norm = spec.stages[stage].blocks[block].norm
        return None, f"s{stage}.b{block}.{branch}.norm.{norm}/{sub[5:]}"
    item = by_place[(stage, block, "token_mixer" if branch == "token" else "channel_mixer")]
    return item, sub.removeprefix("mixer.")
