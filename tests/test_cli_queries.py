"""The questions a user asks of finished runs (issue 25): ``mixnas trials``, ``mixnas runs diff``,
``export --pick topK``, `load_trials`' architecture columns and front flag, ONNX with a dynamic
batch, ``mixnas space list`` / ``space describe nb201``, the generated proxy docs, the LICENSE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixnas import load_trials
from mixnas.cli import main
from mixnas.config import parse_config
from mixnas.driver import run_search
from mixnas.report.data import RunData
from tests.run_helpers import small_config

ROOT = Path(__file__).resolve().parents[1]


def _run(root: Path, name: str, **changes: object) -> Path:
    settings: dict[str, object] = {
        "budget": {"trials": 10},
        "backend": {"name": "local", "workers": 0},
        "evaluators": [{"name": "tests.run_helpers:SlowScore", "options": {"delay": 0.0}}],
    }
    config = small_config(name, str(root), **{**settings, **changes})
    return run_search(parse_config(config), quiet=True).run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny runs that differ in seed and budget (read only: tests copy before writing)."""
    root = tmp_path_factory.mktemp("runs")
    return {"a": _run(root, "a"), "b": _run(root, "b", seed=5, budget={"trials": 8})}


def _out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- load_trials ----------------------------------------------------------------------------------


def test_load_trials_has_the_architecture_columns_and_the_front(runs: dict[str, Path]) -> None:
    frame = load_trials(runs["a"])
    for column in ("mixers", "depths", "widths", "bits", "front"):
        assert column in frame.columns
    trials_csv = __import__("mixnas.report.tables", fromlist=["x"]).trials_table(
        RunData.load(runs["a"])
    )
    for column in ("mixers", "depths", "widths", "bits"):
        assert list(frame[column]) == list(trials_csv[column])
    run = RunData.load(runs["a"])
    assert list(frame["front"]) == [bool(f) for f in run.on_front]
    assert frame["front"].any() and not frame["front"].all()
    assert frame["depths"].str.fullmatch(r"\d+(-\d+)*").all()
