"""``mixnas latency measure|profile``: output, JSON, table reuse and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixnas.cli import main
from search_space import ArchSpec, load_space


def _spec_file(tmp_path: Path) -> Path:
    data = load_space("hybrid").sample(1).to_dict()
    data["input"]["resolution"] = [16, 16]
    path = tmp_path / "spec.json"
    path.write_text(ArchSpec.from_dict(data).to_json())
    return path


def test_measure_a_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _spec_file(tmp_path)
    assert main(["latency", "measure", str(path), "--repeats", "3", "--warmup", "1"]) == 0
    assert "median" in capsys.readouterr().out
    assert main(["latency", "measure", str(path), "--repeats", "3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["latency_ms"] > 0 and info["latency_ms@host"] == info["latency_ms"]
    assert info["batch_size"] == 1 and info["dtype"] == "auto"


def test_measure_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "measure", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"input": {"kind": "image", "num_classes": 3}}')
    assert main(["latency", "measure", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixnas: error:") and "bad.json" in err
    with pytest.raises(SystemExit):
        main(["latency", "measure", str(bad), "--dtype", "fp8"])


def test_profile_fills_a_table_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["latency", "profile", "--device", "host", "--space", "hybrid", "-n", "2"]
    args += ["--cache-dir", str(tmp_path), "--repeats", "2", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["profiled"] == first["signatures"] > 0 and Path(first["table"]).exists()
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["profiled"] == 0 and second["already_cached"] == first["signatures"]


def test_profile_unknown_space_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latency", "profile", "--device", "host", "--space", "no_such_space"]) == 2
    assert "no_such_space" in capsys.readouterr().err
