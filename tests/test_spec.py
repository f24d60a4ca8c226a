"""ArchSpec: canonical JSON, content ids, structural parsing errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_space import ArchSpec, SpaceError, load_space, validate_spec

HYBRID = load_space("hybrid")
ISOTROPIC = load_space("isotropic")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), space=st.sampled_from([HYBRID, ISOTROPIC]))
def test_json_round_trip_preserves_spec_and_id(seed: int, space) -> None:
    spec = space.sample(np.random.default_rng(seed))
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec
    assert again.id == spec.id
    assert again.to_json() == spec.to_json()
    # indentation is presentation only: same spec, same id
    assert ArchSpec.from_json(spec.to_json(indent=2)).id == spec.id


def test_canonical_json_has_sorted_keys_and_no_whitespace() -> None:
    spec = HYBRID.sample(0)
    text = spec.to_json()
    assert " " not in text.replace('"per_tensor"', "")
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_different_specs_have_different_ids() -> None:
    rng = np.random.default_rng(1)
    specs = {HYBRID.sample(rng).id for _ in range(200)}
    assert len(specs) == 200


def test_spec_is_immutable() -> None:
    spec = HYBRID.sample(0)
    with pytest.raises(AttributeError):
        spec.stages = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["stages"][0].update(width=-3), "stages[0].width"),
        (
            lambda d: d["stages"][0]["blocks"][0]["token_mixer"].update(name="nope"),
            "stages[0].blocks[0].token_mixer.name",
        ),
        (
            lambda d: d["stages"][0]["blocks"][0]["token_mixer"]["params"].update(bogus=3),
            "stages[0].blocks[0].token_mixer.params.bogus",
        ),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (
            lambda d: d["stages"][0]["blocks"][0]["quant"].update(weight_bits=7),
            "stages[0].blocks[0].quant.weight_bits",
        ),
    ],
)
def test_invalid_spec_errors_name_the_field(mutate, field: str) -> None:
    data = HYBRID.sample(0).to_dict()
    mutate(data)
    with pytest.raises(SpaceError) as info:
        validate_spec(ArchSpec.from_dict(data, source="spec.json"), source="spec.json")
    assert info.value.field == field
    assert str(info.value).startswith("spec.json: ")
