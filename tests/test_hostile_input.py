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


def _cost_config(tmp_path: Path, file: str, **changes: object) -> Path:
    data = {
        "name": file,
        "runs_dir": str(tmp_path / "runs"),
        "space": "hybrid",
        "objectives": [{"metric": "macs", "direction": "minimize"}],
        "evaluators": ["cost"],
        "budget": {"trials": 3},
        "export": None,
        **changes,
    }
    path = tmp_path / f"{file}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"population_size": None}, "strategy.options.population_size: must be an integer in"),
        ({"population_size": "ten"}, "(got 'ten')"),
        ({"population_size": -1}, "(got -1)"),
        ({"population_size": 10**30}, "digits)"),
        ({"crossover_prob": 2.0}, "strategy.options.crossover_prob: must be a number in [0, 1]"),
        ({"initial": []}, "strategy.options.initial: unknown option of nsga2"),
    ],
)
def test_strategy_options_are_checked_before_the_run_folder_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: dict, fragment: str
) -> None:
    config = _cost_config(tmp_path, "s", strategy={"name": "nsga2", "options": options})
    assert fragment in one_line(capsys, ["search", str(config), "-q"])
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("evaluator", "fragment"),
    [
        (
            {"name": "proxy", "options": {"names": ["nwot"], "batch_size": "16"}},
            "evaluators[0].options.batch_size: must be an integer in [1, 65536] (got '16')",
        ),
        ({"name": "proxy", "options": {"names": "nwot"}}, "must be a list of strings"),
        ({"name": "train", "options": {"lr": "fast"}}, "evaluators[0].options.lr: must be a"),
        ({"name": "latency", "options": {"dtype": "fp8"}}, "must be one of fp32, fp16"),
        ({"name": "cost", "options": {"count": True}}, "unknown option of cost; allowed: none"),
    ],
)
def test_evaluator_options_are_checked_before_the_run_folder_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], evaluator: dict, fragment: str
) -> None:
    config = _cost_config(tmp_path, "e", evaluators=[evaluator])
    assert fragment in one_line(capsys, ["search", str(config), "-q"])
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("changes", "argv", "fragment"),
    [
        ({"backend": {"workers": 100_000}}, [], "backend.workers: must be at most 1,024"),
        ({}, ["--workers", "5000"], "backend.workers: must be an integer in [0,"),
        ({"budget": {"trials": 10**11}}, [], "budget.trials: must be at most 10,000,000"),
        ({}, ["--budget", str(10**11)], "budget.trials: must be at most 10,000,000"),
        ({"seed": -1}, [], "seed: must be >= 0"),
        ({"name": 0}, [], "name: must be 1-100 letters"),
        ({"runs_dir": "/proc/nope"}, [], "runs_dir: the run folder /proc/nope/"),
    ],
)
def test_values_that_can_only_be_mistakes_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict,
    argv: list[str],
    fragment: str,
) -> None:
    config = _cost_config(tmp_path, "b", **changes)
    assert fragment in one_line(capsys, ["search", str(config), "-q", *argv])
    assert not (tmp_path / "runs").exists()


def test_a_runs_dir_under_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = _cost_config(tmp_path, "r", runs_dir=str(blocker / "runs"))
    assert f"{blocker} is not a folder" in one_line(capsys, ["search", str(config), "-q"])


@pytest.mark.parametrize(
    ("stage", "fragment"),
    [
        ({"width": [10**30, 64]}, "stages[0].width: choices must be at most 65,536"),
        ({"depth": [100_000]}, "stages[0].depth: choices must be at most 1,024"),
    ],
)
def test_space_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stage: dict, fragment: str
) -> None:
    from search_space.declare.loader import read_declaration
    from search_space.spaces import builtin_path

    data = read_declaration(builtin_path("hybrid"))
    data["stages"][0].update(stage)
    path = tmp_path / "space.json"
    path.write_text(json.dumps(data))
    assert fragment in one_line(capsys, ["space", "describe", str(path)])
    data = read_declaration(builtin_path("hybrid"))
    data["name"] = 0
    path.write_text(json.dumps(data))
    assert "name: must be a string" in one_line(capsys, ["space", "describe", str(path)])


def test_spec_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "sample", "hybrid", "-n", "1", "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)[0]["spec"]
    spec["stages"][0]["width"] = 10**30
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert "stages[0].width: must be at most 65,536" in one_line(capsys, ["build", str(path)])
