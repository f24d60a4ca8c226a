"""The contract of a training-free proxy, for the built-ins and for plug-ins.

On a tiny network around every registered token mixer (16x16 image, 4x4 patches, one block of
width 32; with a class token for mixers that need one), plus a LayerNorm-only network, token-id
networks and a NAS-Bench-201 cell: each proxy gives a finite float, and the same one again for
the same seed. The declared exceptions (`UNSCORABLE`) must give NaN and say why.

Use from a plug-in's tests (a new proxy over every mixer, or every proxy over a new mixer)::

    import pytest
    from mixnas.testing.proxies import check_proxies, proxy_cases

    @pytest.mark.parametrize(("case", "make_spec"), proxy_cases())
    def test_my_proxy(case, make_spec):
        check_proxies(case, make_spec, ["my_proxy"])

    @pytest.mark.parametrize(("case", "make_spec"), proxy_cases(["my_mixer"], extras=False))
    def test_every_proxy_scores_my_mixer(case, make_spec):
        check_proxies(case, make_spec)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from search_space import ArchSpec, Block, InputSpec, Op, Stage, validate_spec
from search_space.errors import SpaceError
from search_space.ops import CHANNEL_MIXERS, HEADS, STEMS, TOKEN_MIXERS

# parameters that make each mixer fit a 4x4 grid of width 32 (head_dim 8: four heads)
FIT: dict[str, dict[str, Any]] = {
    "attention": {"head_dim": 8},
    "linear_attention": {"head_dim": 8},
    "sr_attention": {"head_dim": 8},
    "window_attention": {"head_dim": 8, "window": 2},
}
BATCH = 8
# (proxy, case) pairs where the proxy is undefined: they must give NaN with this text in the error
UNSCORABLE = {
    # no activation module at all: there is no activation pattern whose regions could be counted
    ("linear_regions", "layernorm-only"): "cannot score",
}
# mixers that need a skeleton of their own (a whole NAS-Bench-201 cell): the nb201 case covers it
STANDALONE = ("nb201_cell",)


def _op(registry: Any, name: str, params: dict[str, Any] | None = None) -> Op:
    return Op.of(name, registry.get(name).complete(params or {}, name))


def tiny_spec(
    mixer: str,
    channel_mixer: str = "mlp",
    *,
    tokens: bool = False,
    class_token: bool = False,
    params: dict[str, Any] | None = None,
) -> ArchSpec:
    """16x16 image, 4x4 patches, one stage of width 32 with one block (or 16 token ids)."""
    block = Block(
        _op(TOKEN_MIXERS, mixer, params if params is not None else FIT.get(mixer)),
        _op(CHANNEL_MIXERS, channel_mixer, {"ratio": 2.0} if channel_mixer == "mlp" else None),
    )
    if tokens:
        inp, stem = InputSpec("tokens", 4, seq_len=16, vocab_size=50), _op(STEMS, "token_embed")
    else:
        inp = InputSpec("image", 10, channels=3, resolution=(16, 16))
        stem = _op(STEMS, "patch_embed", {"patch_size": 4, "cls_token": class_token})
    spec = ArchSpec(inp, stem, (Stage(32, Op.of("none"), (block,)),), _op(HEADS, "classifier"))
    validate_spec(spec)
    return spec


def mixer_spec(mixer: str) -> ArchSpec:
    """The tiny spec, with a class token for mixers that need one (class attention)."""
    try:
        return tiny_spec(mixer)
    except SpaceError:
        return tiny_spec(mixer, class_token=True)


def _nb201() -> ArchSpec:
    from search_space.spaces.nb201 import from_arch_str

    return from_arch_str(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
        dataset="ImageNet16-120",
    )


def proxy_cases(mixers: Iterable[str] | None = None, *, extras: bool = True) -> list[Any]:
    """``pytest.param(case, make_spec)`` for a tiny network around each token mixer named (every
    registered one when None) and, with ``extras``, the LayerNorm-only, token-id and NB201
    networks."""
    names = [m for m in TOKEN_MIXERS.names() if m not in STANDALONE] if mixers is None else mixers
    cases = [pytest.param(m, lambda m=m: mixer_spec(m), id=m) for m in names]
    if extras:
        cases += [
            pytest.param(
                "layernorm-only", lambda: tiny_spec("identity", "none"), id="layernorm-only"
            ),
            pytest.param(
                "token-ids-scan",
                lambda: tiny_spec("selective_ssm", tokens=True),
                id="token-ids-scan",
            ),
            pytest.param(
                "token-ids-fft",
                lambda: tiny_spec("global_filter", tokens=True),
                id="token-ids-fft",
            ),
            pytest.param("nb201-cell", _nb201, id="nb201-cell"),
        ]
    return cases


def check_proxies(
    case: str, make_spec: Callable[[], ArchSpec], names: Iterable[str] | None = None
) -> None:
    """The proxies named (every registered one when None) score ``make_spec()`` finite and the
    same twice for one seed; skips when the spec's mixer rejects the tiny context."""
    from evaluators.proxies import PROXIES, compute_detailed

    try:
        spec = make_spec()
    except SpaceError as err:
        pytest.skip(f"the mixer's rules reject the tiny context: {err}")
    if names is None:
        names = PROXIES.names()
    else:
        names = list(names)
        for name in names:
            PROXIES.get(name)  # an unknown name raises, listing the known ones
    first = compute_detailed(spec, names, seed=3, batch_size=BATCH)
    expected = {n: UNSCORABLE[n, case] for n in names if (n, case) in UNSCORABLE}
    failures = {
        n: s.error
        for n, s in first.items()
        if (not math.isfinite(s.value) or s.error) and n not in expected
    }
    assert not failures, failures
    for name, reason in expected.items():
        assert math.isnan(first[name].value) and reason in first[name].error, first[name]
    for score in first.values():
        assert isinstance(score.value, float) and not isinstance(score.value, complex)
    again = compute_detailed(spec, names, seed=3, batch_size=BATCH)
    assert {n: s.value for n, s in again.items()} == {n: s.value for n, s in first.items()}
