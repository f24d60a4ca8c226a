"""Causal sequence models: the ``causal`` flag of token mixers and the checks of a causal spec.

A causal language model reads position t's output as its prediction of token t + 1, so nothing at
a position may see a later one. Each op declares whether and how it can be causal
(`search_space.ops.base.Causal`, ``OpDef.causal``): a mixer with a ``causal`` parameter
(attention's mask, linear attention's prefix sums, left-padded convolutions) is causal when it is
true, the selective SSM when it is not bidirectional, a per-token op (MLP, layer norm, identity)
always. A head with ``needs_causal`` (the LM head, `search_space.ops.heads`) makes the whole spec
causal: `check_causal_plan` (called by `search_space.plan.plan` on every spec) and
`check_causal_space` (called when a space declaration is read) refuse, in one line, every op that
is not causal with the parameters given and name the token mixers that are allowed. An op that
declares nothing is refused (a plug-in's mixer is not assumed causal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from search_space.errors import SpaceError
from search_space.ops.base import Causal, OpContext, OpDef, ParamDef
from search_space.ops.registries import REGISTRIES, TOKEN_MIXERS

# the flag a sequence mixer takes to become causal; implicit so that the specs written before it
# existed keep their ids (`ParamDef.implicit`)
CAUSAL = ParamDef(
    "causal",
    bool,
    False,
    doc="causal: position t sees positions <= t only (1-D sequences; for causal LM heads)",
    implicit=True,
)


def causal_flag(how: str) -> Causal:
    """The causality of a mixer with the `CAUSAL` parameter: causal when it is true."""
    return Causal(when=(("causal", True),), how=how)


def causal_needs_sequence(ctx: OpContext, params: Mapping[str, Any]) -> str | None:
    """Rule: ``causal`` orders tokens along one axis, so it needs a 1-D grid."""
    if params.get("causal") and len(ctx.grid) != 1:
        return f"causal=true needs a 1-D sequence grid; allowed: rank 1 (got rank {len(ctx.grid)})"
    return None


def causal_form(op: OpDef) -> str:
    """How a causal space writes ``op``: ``attention (causal: true)``, ``identity``."""
    if op.causal is None:
        return ""
    when = ", ".join(f"{k}: {str(v).lower()}" for k, v in op.causal.when)
    return f"{op.name} ({when})" if when else op.name


def causal_token_mixers() -> list[OpDef]:
    """The registered token mixers that can be causal."""
    return [TOKEN_MIXERS.get(n) for n in TOKEN_MIXERS.names() if TOKEN_MIXERS.get(n).causal]


def _refusal(head: str, offenders: Sequence[str]) -> str:
    allowed = ", ".join(causal_form(op) for op in causal_token_mixers())
    shown = "; ".join(offenders[:8])
    if len(offenders) > 8:
        shown += f"; and {len(offenders) - 8} more"
    return (
        f"head {head!r} predicts each next token from the positions before it, so every op must "
        f"be causal; not causal here: {shown}; causal token mixers: {allowed} (channel mixers "
        "and norms: per-token ones)"
    )


def check_causal_plan(ops: Sequence[Any]) -> None:
    """Refuses a planned spec whose head needs causality and whose ops are not all causal.

    ``ops`` are `search_space.plan.PlannedOp` items in execution order, the head last; items
    without an op (layer scales) act per token.
    """
    head = ops[-1].op
    if head is None or not head.needs_causal:
        return
    bad = [item for item in ops[:-1] if item.op is not None and not item.op.is_causal(item.params)]
    if bad:
        offenders = [_offender(item.path, item.op, item.params) for item in bad]
        raise SpaceError(bad[0].path, _refusal(head.name, offenders))


def check_causal_space(decl: Any) -> None:
    """Refuses a space declaration with a causal head and any op choice that is not causal.

    ``decl`` is a `search_space.declare.schema.SpaceDecl`; every stem, downsampler, token mixer,
    channel mixer and norm any of its specs can use is checked, and a stage with a skip or latent
    tokens (which mix positions) is refused too.
    """
    heads = [REGISTRIES["head"].get(h.name) for h in decl.heads]
    causal_heads = [h for h in heads if h.needs_causal]
    if not causal_heads:
        return
    offenders: list[str] = []
    first = ""

    def check(kind: str, refs: Iterable[Any], path: str) -> None:
        nonlocal first
        for ref in refs:
            name, params = (ref, {}) if isinstance(ref, str) else (ref.name, ref.kwargs)
            op = REGISTRIES[kind].get(name)
            if not op.is_causal(params):
                offenders.append(_offender(path, op, params))
                first = first or path

    check("stem", decl.stems, "stem")
    for i, stage in enumerate(decl.stages):
        path = f"stages[{i}]"
        check("downsample", stage.downsamples, f"{path}.downsample")
        check("token_mixer", stage.mixers, f"{path}.token_mixers")
        check("channel_mixer", stage.channel_mixers, f"{path}.channel_mixers")
        check("norm", stage.norms, f"{path}.norms")
        for key in ("skip", "latents"):
            if getattr(stage, key) is not None:
                offenders.append(f"{path}.{key} (mixes positions)")
                first = first or f"{path}.{key}"
    if offenders:
        raise SpaceError(first, _refusal(causal_heads[0].name, offenders))


def _offender(path: str, op: OpDef, params: Mapping[str, Any]) -> str:
    """``path name``, with the values of the parameters that would make the op causal."""
    if op.causal is None:
        return f"{path} {op.name}"
    defaults = op.defaults()
    shown = ",".join(f"{k}={params.get(k, defaults.get(k))}" for k, _ in op.causal.when)
    return f"{path} {op.name}({shown})"
