"""The weight-sharing contract of an op: a strict supernet over a tiny space around the op holds
every variant of it (`check_sharing`), and the helpers behind it (tiny spaces around one
registered op, the extract check, registering a throwaway op for a test's duration).

Use from a plug-in's tests::

    import pytest
    from mixnas.testing.sharing import check_sharing, sharing_cases

    @pytest.mark.parametrize(("kind", "name"), sharing_cases(["my_mixer"]))
    def test_my_op_shares_its_weights(kind, name):
        check_sharing(kind, name)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from search_space import ArchSpec, SearchSpace, build_model, example_input
from search_space.errors import SpaceError
from search_space.nn.builder import count_params
from search_space.ops import REGISTRIES, OpDef, register
from search_space.ops.base import ParamDef
from search_space.ops.sharing import resolve
from search_space.plan import plan

IMAGE = {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 4}
FEATURES = {"kind": "tokens", "seq_len": 16, "feature_dim": 6, "num_classes": 4}
TOKENS = {"kind": "tokens", "seq_len": 16, "vocab_size": 32, "num_classes": 4}
# a causal language model's input: one output per vocabulary entry
LM_TOKENS = {"kind": "tokens", "seq_len": 16, "vocab_size": 32, "num_classes": 32}
WIDTHS = ([32, 64], [16, 32], [64, 128], [32], [64], [128])


@contextmanager
def temporarily_registered(op: OpDef) -> Iterator[OpDef]:
    """Registers ``op`` for the duration of the block, then removes it again (registries have no
    public removal: a plug-in stays registered for the life of its process)."""
    register(op)
    try:
        yield op
    finally:
        REGISTRIES[op.kind]._items.pop(op.name, None)


def assert_extract_matches(supernet: Any, specs: Iterable[ArchSpec], atol: float = 1e-5) -> None:
    """For each spec: ``extract(spec)`` has the builder's parameter count and, in eval mode, the
    active supernet's output within ``atol``."""
    supernet.eval()
    for spec in specs:
        x = example_input(spec, batch_size=2)
        with torch.no_grad():
            expected = supernet.configure(spec)(x)
            model = supernet.extract(spec).eval()
            got = model(x)
        assert count_params(model) == count_params(build_model(spec)), spec.id
        assert torch.allclose(got, expected, atol=atol, rtol=0), (
            spec.id,
            float((got - expected).abs().max()),
        )


# -- a tiny space around one op -------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def _others(pdef: ParamDef) -> list[Any]:
    """Values of an elastic parameter besides its default, for the op's variants."""
    default = pdef.default
    if pdef.choices is not None:
        return [c for c in pdef.choices if c != default]
    if pdef.kind is bool:
        return [not default]
    low = pdef.minimum if pdef.minimum is not None else 0
    if pdef.kind is int:
        values = [default // 2, default - 2, default + 2, default * 2]
        return [v for v in dict.fromkeys(values) if v >= max(low, 1) and v != default]
    if pdef.kind is float:
        return [v for v in (default / 2, default * 2) if v > low and v != default]
    return []


def op_variants(op: OpDef) -> list[dict[str, Any]]:
    """The op's defaults, its examples, the defaults with each elastic parameter moved, and with
    each other flag or enumeration moved once."""
    out: list[dict[str, Any]] = []
    for example in ({}, *op.examples):
        params = {k: _plain(v) for k, v in example.items()}
        if params not in out:
            out.append(params)
    elastic = resolve(op.sharing, op.defaults()).elastic if op.sharing is not None else ()
    for pdef in op.params:
        if pdef.name in elastic:
            out += [{pdef.name: value} for value in _others(pdef)]
        elif pdef.choices is not None or pdef.kind is bool:
            out += [{pdef.name: value} for value in _others(pdef)[:1]]
    return out


def _entry(name: str, params: dict[str, Any], *, flat: bool) -> dict[str, Any]:
    # a list-valued parameter is written as a list of lists (one choice)
    values = {k: [v] if isinstance(v, list) else v for k, v in params.items()}
    return {"name": name, **values} if flat else {name: values}


def _stem(cls_token: bool, stride: int = 2) -> dict[str, Any]:
    if stride == 1:  # 3x3, stride 1: a super-resolution body keeps the input's grid
        return {"name": "patch_embed", "patch_size": 3, "stride": 1, "padding": 1,
                "cls_token": cls_token}  # fmt: skip
    return {"name": "patch_embed", "patch_size": 2, "cls_token": cls_token}


def _declarations(kind: str, name: str, variants: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Candidate declarations that offer ``variants`` of the op, most demanding first (class
    tokens, two widths)."""
    mlp = {"mlp": {"ratio": 2.0}}
    head = {"name": "classifier"}
    entries = [_entry(name, p, flat=False) for p in variants]
    flat = [_entry(name, p, flat=True) for p in variants]
    if kind == "head" and REGISTRIES[kind].get(name).needs_causal:
        # a causal (LM) head: token ids, causal mixers only (a tied head needs one width)
        for cls_token, widths in itertools.product((True, False), WIDTHS):
            yield {
                "input": LM_TOKENS,
                "stem": [{"name": "token_embed", "cls_token": cls_token}],
                "token_mixers": {"identity": {}, "dwconv": {"kernel": 3, "causal": True}},
                "channel_mixers": mlp,
                "stages": [{"depth": [1], "width": widths}],
                "head": flat,
            }
    elif kind in ("token_mixer", "channel_mixer", "norm", "head"):
        for cls_token, widths in itertools.product((True, False), WIDTHS):
            image_head = kind == "head" and REGISTRIES[kind].get(name).output == "image"
            inp, stem = IMAGE, [_stem(cls_token, 1 if image_head else 2)]
            stage: dict[str, Any] = {"depth": [1, 2], "width": widths}
            decl = {"input": inp, "token_mixers": {"dwconv": {"kernel": 3}}, "channel_mixers": mlp}
            if kind == "token_mixer":
                if 2 not in REGISTRIES[kind].get(name).spatial_dims:
                    inp, stem = FEATURES, [{"name": "feature_embed", "cls_token": cls_token}]
                stage.update(token_mixers=entries, patterns=["uniform", "free"])
                decl.update(input=inp, token_mixers={name: {}})
            elif kind == "channel_mixer":
                stage["channel_mixers"] = entries
                decl["channel_mixers"] = {name: {}}
            elif kind == "norm":
                stage["norms"] = [name]
            else:
                stage["depth"] = [1]
            yield {
                **decl,
                "stem": stem,
                "stages": [stage],
                "head": flat if kind == "head" else head,
            }
    elif kind == "stem":
        for widths, inp in itertools.product(WIDTHS, (IMAGE, FEATURES, TOKENS)):
            stage = {"depth": [1], "width": widths, "token_mixers": ["identity"]}
            yield {
                "input": inp,
                "stem": flat,
                "token_mixers": {"identity": {}},
                "channel_mixers": mlp,
                "stages": [stage],
                "head": head,
            }
    elif kind == "downsample":
        # narrowing, equal and widening width pairs where the op allows them; class tokens too
        pairs = ([[16, 32], [24, 32, 48]], [[16, 24], [32, 48]], [[32], [32]], [[64], [64]])
        stems = ([_stem(False), _stem(True)], [_stem(False)])
        for stem, (first, second) in itertools.product(stems, pairs):
            stages = [
                {"depth": [1], "width": first, "token_mixers": ["identity"]},
                {
                    "depth": [1, 2],
                    "width": second,
                    "token_mixers": ["identity"],
                    "downsample": flat,
                },
            ]
            yield {
                "input": IMAGE,
                "stem": stem,
                "token_mixers": {"identity": {}},
                "channel_mixers": mlp,
                "stages": stages,
                "head": head,
            }


def _accepted(decl: dict[str, Any]) -> SearchSpace | None:
    try:
        space = SearchSpace.from_dict(decl)
        plan(space.sample(0))
    except SpaceError:
        return None
    return space


def op_space(kind: str, name: str) -> SearchSpace:
    """A tiny space offering as many variants of the op (`op_variants`) as one of the candidate
    declarations accepts, elastic widths included where the op allows them."""
    variants = op_variants(REGISTRIES[kind].get(name))
    for index, _ in enumerate(_declarations(kind, name, variants[:1])):
        kept: list[dict[str, Any]] = []
        for params in variants:
            decl = list(_declarations(kind, name, [*kept, params]))[index]
            if _accepted({"name": f"op-{name}", **decl}) is not None:
                kept.append(params)
        if kept:
            decl = list(_declarations(kind, name, kept))[index]
            space = _accepted({"name": f"op-{name}", **decl})
            assert space is not None
            return space
    raise AssertionError(f"no tiny space accepts {kind} {name!r}")


# -- the contract ---------------------------------------------------------------------------------


def sharing_cases(names: Iterable[str] | None = None) -> list[Any]:
    """One ``pytest.param(kind, name)`` per registered op (of every kind) named in ``names``
    (every registered op when None)."""
    import pytest

    wanted = None if names is None else set(names)
    return [
        pytest.param(kind, name, id=f"{kind}-{name}")
        for kind, registry in REGISTRIES.items()
        for name in registry.names()
        if wanted is None or name in wanted
    ]


def check_sharing_declared(names: Iterable[str] | None = None) -> None:
    """Every op named (every registered op when None) declares a usable sharing rule."""
    from search_space.ops.sharing import problems

    wanted = None if names is None else set(names)
    found = [
        problem
        for registry in REGISTRIES.values()
        for name in registry.names()
        if wanted is None or name in wanted
        for problem in problems(registry.get(name))
    ]
    assert not found, "ops without a usable weight-sharing rule:\n" + "\n".join(found)


def check_sharing(kind: str, name: str, *, samples: int = 6) -> None:
    """A strict supernet over a tiny space offering the op's defaults, examples and elastic
    variants at several widths: ``extract(spec)`` has the builder's parameter count and equals
    the active supernet, for its largest, smallest and ``samples`` random specs."""
    import numpy as np

    from evaluators.supernet import Supernet

    space = op_space(kind, name)
    supernet = Supernet(space, seed=0)
    rng = np.random.default_rng(0)
    specs = [supernet.largest(), supernet.smallest(), *(space.sample(rng) for _ in range(samples))]
    assert_extract_matches(supernet, specs)
