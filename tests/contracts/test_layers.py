"""Contract every registered stem, downsampler, head and norm passes (`mixnas.testing.layers`).

Each op is placed in a minimal network (identity token mixer, no channel mixer) for every input it
supports; the network builds, runs forward and backward, has exactly the analytic parameter count,
and its counted MACs agree with the analytic total within 2%.
"""

from __future__ import annotations

from typing import Any

import pytest

from mixnas.testing.layers import (
    FEATURES,
    IMAGE,
    check_downsample,
    check_head,
    check_norm,
    check_spec,
    check_stem,
    downsample_cases,
    head_cases,
    minimal_spec,
    norm_cases,
    stem_cases,
)
from search_space import InputSpec, Op

# tests/test_downsample_options.py builds on these
_spec, _check = minimal_spec, check_spec
__all__ = ["FEATURES", "IMAGE", "_check", "_spec"]


@pytest.mark.parametrize(("inp", "stem"), stem_cases())
def test_stem_contract(inp: InputSpec, stem: Op) -> None:
    check_stem(inp, stem)


@pytest.mark.parametrize(("name", "params", "inp", "cls_token"), downsample_cases())
def test_downsample_contract(
    name: str, params: dict[str, Any], inp: InputSpec, cls_token: bool
) -> None:
    check_downsample(name, params, inp, cls_token)


@pytest.mark.parametrize(("name", "params"), head_cases())
def test_head_contract(name: str, params: dict[str, Any]) -> None:
    check_head(name, params)


@pytest.mark.parametrize("name", norm_cases())
def test_norm_contract(name: str) -> None:
    check_norm(name)
