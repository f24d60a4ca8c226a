"""bench/scale.py: the window figures, the cap and skip logic, the rendered section, and a tiny
end-to-end run (mixnas inline beside Optuna in memory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.scale import (
    SECTION,
    cap_status,
    capped_earlier,
    format_cell,
    growth_checks,
    growth_figures,
    main,
    render,
    summarize,
    window_ms,
    window_size,
)


def test_windows_measure_the_time_between_finishes_per_trial() -> None:
    # 1 ms apart for 10 trials, then 3 ms apart: the last window sees only the slower trials
    times = [i * 0.001 for i in range(11)] + [0.010 + 0.003 * i for i in range(1, 11)]
    assert window_ms(times, 10, last=False) == pytest.approx(1.0)
    assert window_ms(times, 10, last=True) == pytest.approx(3.0)
    assert window_ms(times, 100, last=True) == pytest.approx(2.0)  # shorter run: all of it
    assert window_ms([5.0], 1, last=False) is None
    assert window_size(2000, 0.1) == 200 and window_size(3) == 1


def test_summarize_leaves_start_up_out_of_the_per_trial_figures() -> None:
    launched = 100.0
    times = [103.0 + 0.002 * i for i in range(100)]  # 3 s start-up, then 2 ms a trial
    cell = summarize(times[::-1], count=100, launched=launched, wall_s=4.0)
    assert cell["complete"] and cell["status"] == "complete"
    assert cell["startup_s"] == pytest.approx(3.0)
    assert cell["ms_per_trial"] == pytest.approx(2.0)
    assert cell["first_ms"] == pytest.approx(2.0) and cell["last_over_first"] == pytest.approx(1.0)
    assert cell["window"] == 10


def test_a_capped_or_failed_cell_says_where_it_stopped() -> None:
    assert cap_status(100, 100, 5.0, killed=False, rc=0) == "complete"
    assert cap_status(412, 1000, 601.2, killed=False, rc=0) == "stopped at 412 trials after 601 s"
    assert "hard limit" in cap_status(412, 1000, 720.0, killed=True, rc=-9)
    assert cap_status(100, 100, 5.0, killed=False, rc=1).startswith("failed (exit 1)")
    cell = summarize([1.0, 1.5, 2.0], count=10, launched=0.0, wall_s=600.4)
    assert not cell["complete"] and cell["status"] == "stopped at 3 trials after 600 s"
    assert cell["ms_per_trial"] == pytest.approx(500.0)


def test_a_system_capped_at_one_count_is_reported_not_rerun_at_larger_ones() -> None:
    done = {"system": "optuna-sqlite", "count": 100, "complete": True}
    capped = {"system": "optuna-sqlite", "count": 1000, "complete": False, "status": "stopped"}
    assert capped_earlier([done], "optuna-sqlite") is None
    assert capped_earlier([done, capped], "optuna-sqlite") is capped
    assert capped_earlier([done, capped], "raytune") is None
    skipped = {"system": "optuna-sqlite", "count": 10000, "skipped": "stopped at 1,000 asked"}
    row = format_cell(skipped)
    assert "not run: stopped at 1,000 asked" in row and row.count("|") == 14


def _cell(system: str, **extra: Any) -> dict[str, Any]:
    cell = summarize([10.0 + 0.004 * i for i in range(1000)], count=1000, launched=8.0, wall_s=15)
    return {**cell, "system": system, **extra}


def test_cell_rows_and_the_rendered_section() -> None:
    mixnas = _cell("mixnas-inline", storage_bytes=2_500_000, resume_s=3.2, report_s=1.1)
    peer = _cell("optuna-memory", feasible=990, storage_bytes=None)
    row = format_cell(mixnas)
    assert row.startswith("| 1,000 | mixnas-inline | 1,000 | complete | 15.0 | 2.0 | 4.00 |")
    assert row.endswith("| 2.50 | 3.2 | 1.1 |") and row.count("|") == 14
    assert format_cell(peer).endswith("| — | — | — |")
    systems = {
        "mixnas-inline": growth_figures([0.001 * i for i in range(2000)], 300, "complete"),
        "optuna-sqlite": growth_figures([0.01 * i * i for i in range(2000)], 300, "complete"),
    }
    checks = growth_checks(systems, 300)
    assert list(checks.values()) == [True, True]
    result = {
        "command": "python bench/scale.py --counts 1000",
        "machine": {"cpu": "CPU", "cores": 2, "python": "3", "optuna": "5", "ray": "2"},
        "load": {"start": 0.1, "end": 0.2},
        "cap_seconds": 600.0,
        "cells": [mixnas, peer],
        "growth": {"trials": 2000, "window": 300, "systems": systems, "checks": checks},
    }
    text = render(result)
    assert text.startswith(SECTION) and "python bench/scale.py --counts 1000" in text
    assert "CPU, 2 cores" in text
    assert "99.0% of its trials were" in text
    assert "| mixnas-inline | 2,000 | complete | 1.00 | 1.00 | 1.00 |" in text


def test_tiny_run_mixnas_inline_beside_optuna(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Another section\n\nkept\n")
    args = ["--counts", "30", "--systems", "mixnas-inline,optuna-memory", "--growth", "0"]
    args += ["--cap-seconds", "120", "--work-dir", str(tmp_path / "work")]
    assert main([*args, "--json", str(tmp_path / "s.json"), "--out", str(out)]) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    cells = {c["system"]: c for c in result["cells"]}
    assert set(cells) == {"mixnas-inline", "optuna-memory"}
    for cell in cells.values():
        assert cell["complete"] and cell["trials"] == 30, cell
        assert cell["ms_per_trial"] > 0 and cell["startup_s"] > 0
    assert cells["mixnas-inline"]["storage_bytes"] > 0
    assert cells["mixnas-inline"]["resume_s"] > 0 and cells["mixnas-inline"]["report_s"] > 0
    assert cells["optuna-memory"]["storage_bytes"] is None
    text = out.read_text()
    assert "kept" in text and SECTION in text and "| 30 | optuna-memory | 30 | complete |" in text


@pytest.mark.slow
def test_kill_check_resumes_a_killed_run_to_the_same_records(tmp_path: Path) -> None:
    args = ["--counts", "", "--growth", "0", "--kill-check", "300", "--kill-reference"]
    args += ["--work-dir", str(tmp_path / "work"), "--json", str(tmp_path / "s.json")]
    assert main(args) == 0
    kill = json.loads((tmp_path / "s.json").read_text())["kill_check"]
    assert kill["exercised"] and kill["passed"], kill
    assert kill["resume_under_30s"]
