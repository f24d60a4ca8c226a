"""Hostile input (issue 23): every loader and CLI entry point fails in one line, exit 2.

Undecodable bytes, nesting and size beyond the stated limits, a key given twice, values that
can only be mistakes, long values in messages. The seeded mutation suite is
tests/test_fuzz.py; the damaged run folders are tests/test_run_integrity.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixnas.cli import main
from search_space.declare.loader import MAX_FILE_BYTES, MAX_NESTING, MAX_VALUES

COMMANDS = {
    "space": lambda f: ["space", "describe", str(f)],
    "spec": lambda f: ["build", str(f)],
    "config": lambda f: ["search", str(f), "-q"],
}


def one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("mixnas: error: ")
    return err


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_undecodable_bytes_name_the_file_and_the_offset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, suffix: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b'{"name": "x", "\xff\xfe": 1}')
    err = one_line(capsys, COMMANDS[command](path))
    assert str(path) in err and "not UTF-8" in err and "0xff at offset 15" in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_refused_at_the_stated_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, suffix: str
) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text("[" * 5000 + "]" * 5000)
    err = one_line(capsys, COMMANDS[command](path))
    assert f"nested more than {MAX_NESTING} levels" in err


def test_nesting_just_within_the_limit_is_read(tmp_path: Path) -> None:
    from search_space.declare.loader import read_declaration

    path = tmp_path / "ok.json"
    path.write_text("[" * MAX_NESTING + "]" * MAX_NESTING)
    assert read_declaration(path) is not None


def test_block_style_yaml_nesting_and_alias_bombs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("".join(" " * i + "-\n" for i in range(3000)))
    assert "nested more than" in one_line(capsys, ["space", "describe", str(deep)])
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert f"more than {MAX_VALUES:,} values" in one_line(capsys, ["space", "describe", str(bomb)])


def test_a_file_beyond_the_size_limit_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.json"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    assert "larger than the 16 MiB" in one_line(capsys, ["build", str(path)])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_key_given_twice_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    yaml_file = tmp_path / "dup.yaml"
    yaml_file.write_text("name: a\nseed: 1\nname: b\n")
    json_file = tmp_path / "dup.json"
    json_file.write_text('{"name": "a", "name": "b"}')
    if command != "spec":  # spec files are JSON
        err = one_line(capsys, COMMANDS[command](yaml_file))
        assert "line 3" in err and "duplicate key 'name'" in err
    err = one_line(capsys, COMMANDS[command](json_file))
    assert "given twice" in err and "'name'" in err


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    from search_space.declare.loader import read_declaration

    path = tmp_path / "merge.yaml"
    path.write_text("base: &base {x: 1, y: 2}\nm:\n  <<: *base\n  x: 3\n")
    assert read_declaration(path) == {"base": {"x": 1, "y": 2}, "m": {"x": 3, "y": 2}}


def test_the_json_list_that_space_sample_writes_is_one_short_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["space", "sample", "hybrid", "-n", "3", "--json"]) == 0
    path = tmp_path / "samples.json"
    path.write_text(capsys.readouterr().out)
    err = one_line(capsys, ["build", str(path)])
    assert "JSON list of 3 item(s)" in err and len(err) < 300


def test_long_values_are_shortened_in_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.json"
    spec = {"input": {"kind": "image", "num_classes": 10}, "stem": {}, "head": {}}
    path.write_text(json.dumps({**spec, "stages": ["x" * 5000]}))
    err = one_line(capsys, ["build", str(path)])
    assert len(err) < 300 and "characters)" in err
