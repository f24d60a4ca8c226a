"""bench/quant_search.py: the fixed-8-bit twin of a space and the two search configs."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.quant_search import config, render, spaces
from search_space import SearchSpace
from search_space.spec import Quant


def test_fixed8_twin_samples_only_w8a8_and_joint_samples_more() -> None:
    declared = spaces("hybrid_cpu")
    fixed = SearchSpace.from_dict(declared["fixed8"], source="fixed8")
    joint = SearchSpace.from_dict(declared["joint"], source="joint")
    for seed in range(5):
        spec = fixed.sample(seed)
        assert {b.quant for b in spec.blocks} == {Quant(8, 8)}
        assert spec.boundary_quant == Quant(8, 8)
    policies = {b.quant for seed in range(10) for b in joint.sample(seed).blocks}
    assert len(policies) > 1


def test_configs_parse_with_ptq_objective(tmp_path: Path) -> None:
    args = argparse.Namespace(
        seed=0, steps=10, population=4, trials=4, seconds=60.0, workers=0, trial_timeout=60
    )
    for name, space in spaces("hybrid_cpu").items():
        cfg = config(f"quant-{name}", space, args, tmp_path)
        assert [o.metric for o in cfg.objectives] == ["top1", "bytes"]
        assert [e.name for e in cfg.evaluators] == ["ptq"]


def test_render_names_the_better_front() -> None:
    result = {
        "ref": [1.0, 100.0],
        "fixed8": {"ok": 3, "hv": 10.0, "front": [[0.2, 30.0]], "seconds": 1.0},
        "joint": {"ok": 3, "hv": 12.0, "front": [[0.1, 31.0], [0.2, 30.0]], "seconds": 1.0},
    }
    text = render(result, "python bench/quant_search.py")
    assert "dominates or matches" in text and "| joint | 3 | 12.0000 |" in text
