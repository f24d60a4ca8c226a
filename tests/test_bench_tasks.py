"""bench/tasks.py and bench/search_hybrid.py: their statistics and a tiny end-to-end run of each."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import search_hybrid, tasks


def _cells(task: str, values: dict[str, list[float]]) -> list[dict]:
    return [
        {"task": task, "mixer": mixer, "seed": seed, "top1": v, "cpu_s": 60.0}
        for mixer, vs in values.items()
        for seed, v in enumerate(vs)
    ]


def test_summary_gives_mean_sd_and_cpu_per_mixer():
    summary = tasks.summarise(_cells("t", {"attention": [60.0, 62.0, 64.0], "identity": [50, 50]}))
    row = summary["t"]["attention"]
    assert row["mean"] == pytest.approx(62.0)
    assert row["sd"] == pytest.approx(2.0)  # sample sd, ddof 1
    assert row["cpu_s"] == pytest.approx(180.0)


def test_failed_cells_are_counted_not_averaged():
    cells = _cells("t", {"dwconv": [40.0, 42.0]})
    cells.append({"task": "t", "mixer": "dwconv", "seed": 2, "top1": None, "cpu_s": 1.0})
    row = tasks.summarise(cells)["t"]["dwconv"]
    assert row["failed"] == 1 and row["mean"] == pytest.approx(41.0)


def test_verdict_compares_best_global_with_identity_and_best_local():
    rows = tasks.summarise(
        _cells(
            "t",
            {
                "attention": [70.0, 71.0, 72.0],  # global, best
                "token_mlp": [60.0, 61.0, 62.0],  # global
                "dwconv": [65.0, 66.0, 67.0],  # local, best local
                "pooling": [55.0, 56.0, 57.0],  # local
                "identity": [50.0, 51.0, 52.0],
            },
        )
    )["t"]
    verdict = {v["b"]: v for v in tasks.task_verdict(rows)}
    assert set(verdict) == {"identity", "dwconv"}
    assert verdict["dwconv"]["a"] == "attention"
    assert verdict["dwconv"]["points"] == pytest.approx(5.0)
    assert verdict["dwconv"]["in_sd"] == pytest.approx(5.0)  # sd 1 on both sides
    assert verdict["identity"]["in_sd"] == pytest.approx(20.0)
    assert verdict["identity"]["p"] < 0.01


def test_every_mixer_has_a_reach_and_the_macro_builds(tmp_path):
    from search_space.declare.loader import space_from_declaration

    reaches = {m.reach for m in tasks.MIXERS.values()}
    assert {tasks.GLOBAL, tasks.LOCAL, tasks.NONE} <= reaches
    for name, setup in tasks.TASKS.items():
        decl = tasks.macro_declaration(setup, tasks.MIXERS["attention"], depth=2, width=32)
        spec = space_from_declaration(decl, name).sample(np.random.default_rng(0))
        assert [b.token_mixer.name for b in spec.stages[0].blocks] == ["attention"] * 2


def test_tasks_bench_runs_and_reuses_its_cells(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIXNAS_DATA_CACHE", str(tmp_path / "cache"))
    cache = tmp_path / "cells.json"
    out = tmp_path / "bench.md"
    argv = ["--tasks", "digits", "--mixers", "attention,dwconv,identity", "--seeds", "2",
            "--steps", "3", "--depth", "1", "--width", "16", "--workers", "1",
            "--json", str(cache), "--out", str(out)]  # fmt: skip
    assert tasks.main(argv) == 0
    cells = json.loads(cache.read_text())
    assert len(cells) == 6 and all(c["status"] == "ok" for c in cells.values())
    text = out.read_text()
    assert tasks.TITLE in text and "### digits (3 steps" in text
    assert "attention vs identity" in text and "attention vs dwconv" in text
    capsys.readouterr()
    assert tasks.main(argv) == 0  # every cell cached: nothing trains again
    assert "6 cells cached, 0 to train" in capsys.readouterr().out


def test_hypervolume_curve_grows_and_ignores_failures():
    trials = [
        {"top1": 20.0, "params": 2e5},
        {"top1": None, "params": 1e5},
        {"top1": 30.0, "params": 1e5},
    ]
    curve = search_hybrid.hypervolume_curve(trials, params_bound=4e5)
    # losses (80, 2) then (70, 1) against (100, 4): a 20 x 2 box, then the failure adds nothing,
    # then a 30 x 3 box that holds the first
    assert curve.tolist() == pytest.approx([40.0, 40.0, 90.0])


def test_paired_comparison_counts_wins():
    cmp = search_hybrid.paired(np.array([3.0, 4.0, 5.0, 6.0, 7.0]), np.array([1.0] * 5))
    assert cmp["wins"] == 5 and cmp["mean_diff"] == pytest.approx(4.0)
    assert cmp["wilcoxon_p"] == pytest.approx(0.0625)  # the smallest two-sided p of 5 pairs


def test_search_bench_runs_every_strategy(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXNAS_DATA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench.md"
    argv = ["--seeds", "2", "--trials", "3", "--steps", "2", "--population", "2",
            "--n-train", "128", "--n-val", "64", "--strategies", "random,nsga2,evolution,surrogate",
            "--workers", "1", "--json", str(tmp_path / "runs.json"), "--out", str(out)]  # fmt: skip
    assert search_hybrid.main(argv) == 0
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert len(runs) == 8 and all(len(r["trials"]) == 3 for r in runs.values())
    text = out.read_text()
    assert search_hybrid.TITLE in text
    for name in ("nsga2", "evolution", "surrogate"):
        assert f"- {name}: " in text
