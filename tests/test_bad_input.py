"""Bad input: each case is one clear error naming the file, the field and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from search_space import SpaceError, load_space
from tests.conftest import small_space_dict


def _write(tmp_path: Path, data: Any, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _edit(change) -> dict:
    data = small_space_dict()
    change(data)
    return data


CASES = {
    "malformed_yaml": ("stages: [\n  - depth: [1\n", "line", "YAML syntax error"),
    "unknown_mixer": (
        _edit(lambda d: d["token_mixers"].update(warp_attention={})),
        "token_mixers.warp_attention",
        "unknown token mixer 'warp_attention'",
    ),
    "unknown_key": (
        _edit(lambda d: d["stages"][0].update(widht=[3])),
        "stages[0].widht",
        "unknown key; allowed: ",
    ),
    "unknown_param": (
        _edit(lambda d: d["token_mixers"].update(attention={"heads": 3})),
        "token_mixers.attention.heads",
        "unknown parameter",
    ),
    "heads_not_dividing": (
        _edit(lambda d: d["stages"][0].update(width=[16, 20])),
        "stages[0].token_mixers",
        "does not divide the width 20",
    ),
    "empty_choice": (
        _edit(lambda d: d["stages"][1].update(depth=[])),
        "stages[1].depth",
        "empty choice list",
    ),
    "negative_depth": (
        _edit(lambda d: d["stages"][0].update(depth=[2, -1])),
        "stages[0].depth",
        "integers >= 1",
    ),
    "bits_outside_set": (
        _edit(lambda d: d["quantization"].update(weight_bits=[8, 7])),
        "quantization.weight_bits",
        "bits must be in [2, 3, 4, 5, 6, 8, 16, 32]",
    ),
    "bad_pattern": (
        _edit(lambda d: d["stages"][0].update(patterns=["zigzag"])),
        "stages[0].patterns[0]",
        "must be 'uniform'",
    ),
    "grid_vanishes": (
        _edit(lambda d: d["stem"][0].update(patch_size=[32])),
        "stem",
        "larger than the input",
    ),
    "width_change_without_downsample": (
        _edit(lambda d: d["stages"][1].update(downsample="none", width=[64])),
        "stages[1].downsample[0]",
        "keeps the width",
    ),
    "unknown_metric": (
        _edit(lambda d: d.update(constraints={"flops": {"max": 3}})),
        "constraints.flops",
        "unknown metric",
    ),
    "cls_head_without_token": (
        _edit(lambda d: d.update(head={"name": "classifier", "pool": "cls"})),
        "head[0]",
        "needs a class token",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_space_is_one_clear_error(tmp_path: Path, case: str) -> None:
    data, field, message = CASES[case]
    path = _write(tmp_path, data)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert field in text and message in text, text
    assert "\n" not in text


@pytest.mark.parametrize(
    "case", ["malformed_yaml", "unknown_mixer", "heads_not_dividing", "bits_outside_set"]
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    data, field, _ = CASES[case]
    path = _write(tmp_path, data)
    for command in (["space", "describe", str(path)], ["space", "sample", str(path), "-n", "2"]):
        result = subprocess.run(
            [sys.executable, "-m", "mixnas", *command], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and field in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def test_cli_infeasible_constraint_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, {**small_space_dict(), "constraints": {"params": {"max": 10}}})
    result = subprocess.run(
        [sys.executable, "-m", "mixnas", "space", "sample", str(path), "--max-tries", "20"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "params <= 10" in result.stderr and "Traceback" not in result.stderr


def test_cli_bad_spec_file_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        '{"input": {"kind": "image", "num_classes": 3}, "stem": {"name": "x"}, '
        '"stages": [], "head": {"name": "classifier"}}'
    )
    result = subprocess.run(
        [sys.executable, "-m", "mixnas", "build", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"mixnas: error: {spec}: stages: must be a non-empty list (got [])"
    )


def test_json_space_files_load(tmp_path: Path) -> None:
    import json

    path = tmp_path / "space.json"
    path.write_text(json.dumps(small_space_dict()))
    assert load_space(path).cardinality() > 0
    path.write_text("{ not json")
    with pytest.raises(SpaceError, match="JSON syntax error"):
        load_space(path)


def test_exponent_floats_without_sign_are_numbers(tmp_path: Path) -> None:
    text = yaml.safe_dump(small_space_dict()) + "constraints:\n  params: {max: 6.0e6}\n"
    space = load_space(_write(tmp_path, text))
    assert space.constraints[0].max == 6.0e6
