"""Contract every registered proxy passes: a finite score on a tiny network around every
registered token mixer (plus a LayerNorm-only network, a token-id network and a NAS-Bench-201
cell), the same score twice for the same seed. The only exceptions are the declared cases in
`UNSCORABLE`, where the proxy is undefined and must say so instead of returning a number."""

from __future__ import annotations

import math
from typing import Any

import pytest

from evaluators.proxies import PROXIES, compute_detailed
from search_space import ArchSpec, Block, InputSpec, Op, Stage, validate_spec
from search_space.errors import SpaceError
from search_space.ops import CHANNEL_MIXERS, HEADS, STEMS, TOKEN_MIXERS
from search_space.spaces.nb201 import from_arch_str

# parameters that make each mixer fit a 4x4 grid of width 32 (head_dim 8: four heads)
_FIT: dict[str, dict[str, Any]] = {
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


def _op(registry: Any, name: str, params: dict[str, Any] | None = None) -> Op:
    return Op.of(name, registry.get(name).complete(params or {}, name))


def tiny_spec(
    mixer: str, channel_mixer: str = "mlp", *, tokens: bool = False, class_token: bool = False
) -> ArchSpec:
    """16x16 image, 4x4 patches, one stage of width 32 with one block (or 16 token ids)."""
    block = Block(
        _op(TOKEN_MIXERS, mixer, _FIT.get(mixer)),
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


def _mixer_spec(mixer: str) -> ArchSpec:
    """The tiny spec, with a class token for mixers that need one (class attention)."""
    try:
        return tiny_spec(mixer)
    except SpaceError:
        return tiny_spec(mixer, class_token=True)


def _cases() -> list[Any]:
    cases = [
        pytest.param(m, lambda m=m: _mixer_spec(m), id=m)
        for m in TOKEN_MIXERS.names()
        if m != "nb201_cell"  # needs its own skeleton: covered by the NB201 case below
    ]
    cases += [
        pytest.param("layernorm-only", lambda: tiny_spec("identity", "none"), id="layernorm-only"),
        pytest.param(
            "token-ids-scan", lambda: tiny_spec("selective_ssm", tokens=True), id="token-ids-scan"
        ),
        pytest.param(
            "token-ids-fft", lambda: tiny_spec("global_filter", tokens=True), id="token-ids-fft"
        ),
        pytest.param(
            "nb201-cell",
            lambda: from_arch_str(
                "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|"
                "nor_conv_3x3~1|none~2|",
                dataset="ImageNet16-120",
            ),
            id="nb201-cell",
        ),
    ]
    return cases


@pytest.mark.parametrize(("case", "make_spec"), _cases())
def test_every_proxy_is_finite_and_deterministic(case: str, make_spec: Any) -> None:
    try:
        spec = make_spec()
    except SpaceError as err:
        pytest.skip(f"the mixer's rules reject the tiny context: {err}")
    names = PROXIES.names()
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
