"""The supernet ranking benchmark's bookkeeping: equal passes per recipe, rankings recomputed
from the raw accuracies, and merging saved runs that add stand-alone seeds (no training here)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pytest
from scipy.stats import kendalltau

from bench.supernet import _config, merge, report, score

N = 8


def _args(**over: Any) -> argparse.Namespace:
    base = {
        "num_random": 2,
        "num_archs": 4,
        "lr": 0.02,
        "steps": [100],
        "standalone_steps": 600,
        "standalone_seeds": [0, 1],
        "seeds": [0],
        "n": N,
        "recipes": ["sandwich", "spos"],
        "workers": 2,
    }
    return argparse.Namespace(**{**base, **over})


def _part(alone: dict[int, list[float]], runs: dict[str, dict[int, list[float]]]) -> dict[str, Any]:
    seeds = sorted(alone)
    budgets = {
        "100": {
            name: {
                "config": {"recipe": name, "steps": 100, "num_random": 2},
                "runs": [
                    {"seed": s, "inherited_top1": acc, "train_cpu_min": 1.0}
                    for s, acc in by_seed.items()
                ],
            }
            for name, by_seed in runs.items()
        }
    }
    part = {
        "n": N,
        "standalone_steps": 600,
        "standalone_seeds": seeds,
        "standalone_top1": [alone[s] for s in seeds],
        "standalone_cpu_min": 1.0,
        "budgets": budgets,
        "wall_min": 1.0,
        "command": "python bench/supernet.py ...",
    }
    return score(part)


def _acc(seed: int) -> list[float]:
    return np.random.default_rng(seed).uniform(80, 95, N).round(1).tolist()


def test_every_recipe_gets_the_same_subnet_passes() -> None:
    args = _args()
    sandwich, spos = _config("sandwich", args, 100, 0), _config("spos", args, 100, 0)
    assert sandwich["steps"] * (2 + args.num_random) == spos["steps"] == 400
    ema = _config("spos_ema", args, 100, 0)  # averages over the last 20% of its updates
    assert ema["ema"] == pytest.approx(1 - 1 / (0.2 * 400)) and "ema_span" not in ema


def test_rankings_are_computed_against_the_mean_reference() -> None:
    alone = {0: _acc(0), 1: _acc(1)}
    inherited = _acc(7)
    part = _part(alone, {"sandwich": {0: inherited}})
    reference = np.mean([alone[0], alone[1]], axis=0)
    run = part["budgets"]["100"]["sandwich"]["runs"][0]
    assert run["kendall"] == pytest.approx(kendalltau(inherited, reference).statistic)
    assert part["standalone_repeatability"]["pairwise_kendall"] == [
        pytest.approx(kendalltau(alone[1], alone[0]).statistic)
    ]


def test_merge_adds_stand_alone_seeds_and_rescores_every_run() -> None:
    first = _part({0: _acc(0), 1: _acc(1)}, {"spos": {0: _acc(7)}, "sandwich": {0: _acc(8)}})
    more_seeds = _part({0: _acc(0), 1: _acc(1), 2: _acc(2), 3: _acc(3)}, {})
    more_runs = _part({0: _acc(0), 1: _acc(1)}, {"spos": {1: _acc(9), 0: _acc(5)}})
    merged = merge([first, more_seeds, more_runs])
    assert merged["standalone_seeds"] == [0, 1, 2, 3]
    reference = np.mean([_acc(s) for s in range(4)], axis=0)
    spos = merged["budgets"]["100"]["spos"]["runs"]
    assert [r["seed"] for r in spos] == [0, 1]  # seed 0 kept from the first part
    assert spos[0]["kendall"] == pytest.approx(kendalltau(_acc(7), reference).statistic)
    assert len(merged["standalone_repeatability"]["pairwise_kendall"]) == 6
    assert "split_half_kendall" in merged["standalone_repeatability"]
    text = report(_args(), merged)
    assert "seeds 0, 1, 2, 3" in text and "sandwich" in text and "vs SPOS" in text


def test_merge_refuses_disagreeing_stand_alone_results() -> None:
    first = _part({0: _acc(0), 1: _acc(1)}, {})
    other = _part({0: _acc(5), 1: _acc(1)}, {})
    with pytest.raises(SystemExit, match="seed 0"):
        merge([first, other])


def test_a_reference_run_replaces_the_parts_stand_alone_results() -> None:
    part = _part({0: _acc(0), 1: _acc(1)}, {"spos": {0: _acc(7)}})
    longer = {**_part({0: _acc(3), 1: _acc(4)}, {}), "standalone_steps": 1500}
    merged = merge([part], longer)
    assert merged["standalone_steps"] == 1500
    reference = np.mean([_acc(3), _acc(4)], axis=0)
    run = merged["budgets"]["100"]["spos"]["runs"][0]
    assert run["kendall"] == pytest.approx(kendalltau(_acc(7), reference).statistic)
    assert "--reference REFERENCE.json" in report(_args(), merged)


def test_multi_architecture_sampling_gets_the_passes_of_spos() -> None:
    """A multi_arch step passes each sample once (through one of its subnets), as SPOS does."""
    from bench.supernet import command

    args = _args(recipes=["spos", "sandwich", "multi_arch"])
    multi, spos = _config("multi_arch", args, 100, 0), _config("spos", args, 100, 0)
    assert multi["steps"] == spos["steps"] == 400 and multi["num_archs"] == 4
    assert "--recipes spos,sandwich,multi_arch --num-archs 4" in command(args)
