"""The NB201 search benchmark's contract: seeded runs, arch strings in order, honest scoring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (SHARED / "data").exists(), reason="../shared/ is absent")


def test_json_lists_cells_per_strategy_and_seed() -> None:
    cmd = [
        sys.executable,
        "bench/search_nb201.py",
        "--dataset",
        "cifar10",
        "--device",
        "raspi4",
        "--budget",
        "12",
        "--seeds",
        "2",
        "--workers",
        "1",
        "--json",
        "--strategies",
        "random,local_search,optuna-tpe",
    ]
    out = json.loads(
        subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
        ).stdout
    )
    runs = out["runs"]["mo:raspi4"]
    assert set(runs) == {"random", "local_search", "optuna-tpe"}
    for name, seeds in runs.items():
        assert set(seeds) == {"0", "1"}
        for archs in seeds.values():
            assert len(archs) == 12 and all(a.startswith("|") and a.count("~") == 6 for a in archs)
            if name != "optuna-tpe":  # mixnas strategies never repeat a cell
                assert len(set(archs)) == 12
    again = json.loads(
        subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
        ).stdout
    )
    assert again["runs"] == out["runs"]


def test_regret_is_zero_on_the_true_front_and_falls_with_queries() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.nb201_table import load
    from bench.search_nb201 import regret_curve, true_front

    table = load("cifar10", "fpga")
    front = true_front(table)
    on_front = [
        table.arch[i]
        for i in range(len(table.arch))
        if any(np.allclose(table.all_losses()[i], f) for f in front)
    ]
    assert regret_curve(table, on_front, front)[-1] == pytest.approx(0.0, abs=1e-12)
    curve = regret_curve(table, list(table.arch[:200]), front)
    assert np.all(np.diff(curve) <= 1e-12) and 0 < curve[-1] < 1
