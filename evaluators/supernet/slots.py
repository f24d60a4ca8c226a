"""Maps every parameter of a built subnet to its slot in the supernet's shared weights.

The builder's `MixNet` names its parameters ``stem.*``, ``stages.{i}.0.*`` (the stage's
downsampler), ``stages.{i}.{j+1}.token.*`` / ``.channel.*`` (block j's two branches; a block whose
token mixer is ``none`` is its channel branch alone) and ``head.*``. A branch holds ``norm.*``,
``mixer.*`` and ``scale.gamma``. This module turns each name into a `Slot` key:

    s{i}.b{j}.token.norm.{norm}          the branch's norm, shared by every mixer type
    s{i}.b{j}.token.{op key}/{param}     the mixer and its layer scale, one set per op key
    s{i}.down.{op key}/{param}, stem.{op key}/{param}, head.{op key}/{param}

where the op key is the op name with its non-elastic parameters (and the grid or width where its
`ShareRule` asks for them), so elastic variants of one mixer type land on one tensor.
"""

from __future__ import annotations

from torch import nn

from evaluators.supernet.rules import EXACT, GRID, RULES, WIDTH, ShareRule, Slot, supported
from search_space.errors import SpaceError
from search_space.plan import PlannedOp, plan
from search_space.spec import ArchSpec

KINDS = ("stem", "downsample", "token_mixer", "channel_mixer", "head")


def rule_for(kind: str, name: str, *, strict: bool) -> ShareRule:
    """The op's sharing rule; a strict supernet raises `SpaceError` for an unreviewed op."""
    rule = RULES.get((kind, name))
    if rule is not None:
        return rule
    if strict:
        raise SpaceError(
            kind,
            f"the supernet has no weight-sharing rule for {name!r}; supported: "
            f"{', '.join(supported(kind))} (or pass strict=False: one weight set per shape)",
            value=name,
        )
    return EXACT


def op_key(item: PlannedOp, rule: ShareRule) -> str:
    assert item.op is not None
    fixed = ",".join(f"{k}={v}" for k, v in sorted(item.params.items()) if k not in rule.elastic)
    extra = ""
    if GRID in rule.keyed_by:
        extra += f"@g{'x'.join(map(str, item.ctx.grid))}p{item.ctx.prefix}"
    if WIDTH in rule.keyed_by:
        extra += f"@d{item.ctx.dim}-{item.ctx.out_dim}"
    return f"{item.op.name}({fixed}){extra}"


def _chunk(rule: ShareRule, sub: str, rank: int) -> tuple[int, int] | None:
    for prefix, (axis, pieces) in rule.chunks.items():
        if sub.startswith(prefix):
            return axis, pieces or 2**rank
    return None


def slots(spec: ArchSpec, model: nn.Module, *, strict: bool) -> dict[str, Slot]:
    """Parameter name of ``model`` (the builder's model of ``spec``) -> its shared slot."""
    items = plan(spec)
    by_place: dict[tuple[int, int, str], PlannedOp] = {}
    for item in items:
        by_place[(item.stage, item.block, item.role)] = item
    rank = len(spec.input.grid)
    convs = {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.conv._ConvNd)
    }
    out: dict[str, Slot] = {}
    for name, _ in model.named_parameters():
        head, _, rest = name.partition(".")
        if head in ("stem", "head"):
            item, place, sub = by_place[(-1, -1, head)], head, rest
        else:
            stage, position, sub = _stage_parts(name, rest)
            if position == 0:
                item, place = by_place[(stage, -1, "downsample")], f"s{stage}.down"
            else:
                block = position - 1
                sub, item, place = _branch(by_place, stage, block, sub, name)
                if sub.startswith("norm."):
                    norm = spec.stages[stage].blocks[block].norm
                    out[name] = Slot(f"{place}.norm.{norm}/{sub[5:]}", None, name in convs)
                    continue
                sub = sub.removeprefix("mixer.")
        assert item.op is not None
        rule = rule_for(item.op.kind, item.op.name, strict=strict)
        out[name] = Slot(
            f"{place}.{op_key(item, rule)}/{sub}", _chunk(rule, sub, rank), name in convs
        )
    return out


def _stage_parts(name: str, rest: str) -> tuple[int, int, str]:
    parts = rest.split(".", 2)
    if len(parts) < 3 or not (parts[0].isdigit() and parts[1].isdigit()):
        raise SpaceError("stages", "the supernet supports plain stages only", value=name)
    return int(parts[0]), int(parts[1]), parts[2]


def _branch(
    by_place: dict[tuple[int, int, str], PlannedOp], stage: int, block: int, sub: str, name: str
) -> tuple[str, PlannedOp, str]:
    """The parameter's name inside its branch, the branch's planned op, and the slot prefix."""
    if sub.startswith(("token.", "channel.")):
        branch, _, sub = sub.partition(".")
    else:  # a block without token mixer is its channel branch
        branch = "channel"
    role = "token_mixer" if branch == "token" else "channel_mixer"
    if not sub.startswith(("norm.", "mixer.", "scale.")):
        raise SpaceError("stages", "the supernet supports plain blocks only", value=name)
    return sub, by_place[(stage, block, role)], f"s{stage}.b{block}.{branch}"


def check_space_ops(spec_ops: list[tuple[str, str]], *, strict: bool) -> None:
    """Raises for the first op without a rule (strict only): ``spec_ops`` are (kind, name)."""
    for kind, name in spec_ops:
        rule_for(kind, name, strict=strict)
