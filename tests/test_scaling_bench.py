"""bench/scaling.py's helpers: the base pair it picks and the held-out law error it reports."""

from __future__ import annotations

import math

import pytest

from bench.scaling import ATTENTION, CONV, _law_error, pick_bases
from search_space import spec_cost


def test_pick_bases_gives_a_conv_and_an_attention_heavy_float_spec():
    bases = pick_bases(0, 3e6)
    conv = [b.token_mixer.name for b in bases["conv"].blocks]
    attn = [b.token_mixer.name for b in bases["attn"].blocks]
    assert all(n in CONV for n in conv)
    assert sum(n in ATTENTION for n in attn) >= len(attn) / 2
    for spec in bases.values():
        assert spec_cost(spec).macs <= 3e6 and len(spec.stages) == 3
        assert all(b.quant.is_float for b in spec.blocks) and spec.boundary_quant.is_float


def test_law_error_predicts_the_largest_member_of_a_power_law():
    macs = [1e6, 2e6, 4e6, 8e6]
    err = [30.0 * (m / 1e6) ** -0.25 for m in macs]
    pred, actual, diff = _law_error(macs, err)
    assert actual == err[-1] and pred == pytest.approx(err[-1], rel=1e-6) and diff < 1e-6
    # a family whose smaller members coincide has nothing to fit
    assert math.isnan(_law_error([1e6, 1e6, 1e6, 8e6], [9.0, 9.0, 9.0, 5.0])[2])
