"""Differentiable search: the expected cost is the exact expectation, its gradient reaches the
logits, the penalty steers the search, the result is a spec of the space, a resumed search equals
an uninterrupted one, and the ``mixnas supernet differentiable`` command."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from evaluators.supernet.differentiable import (
    CHECKPOINT,
    AnalyticCost,
    DifferentiableConfig,
    DifferentiableError,
    ExpectedCost,
    TableLatency,
    search,
)
from evaluators.supernet.differentiable.paths import target_of
from evaluators.supernet.train import load_checkpoint
from mixnas.cli import main as cli
from search_space import SearchSpace
from search_space.costs import spec_cost

# two stages whose costs depend on decisions of other stages (the stem's patch size sets every
# grid, stage 0's width is stage 1's downsampler's input), conditional dimensions (a second
# stage, a second block, a free pattern's per-block mixers) and a brute force of 13824 vectors
TINY: dict[str, Any] = {
    "name": "tiny",
    "input": {"kind": "image", "channels": 1, "resolution": 8, "num_classes": 4},
    "stem": {"name": "patch_embed", "patch_size": [2, 4], "norm": "layernorm"},
    "num_stages": [1, 2],
    "token_mixers": {"dwconv": {"kernel": [3, 5]}, "identity": {}, "attention": {"head_dim": 4}},
    "channel_mixers": {"mlp": {"ratio": [1.0, 2.0]}},
    "norms": ["layernorm"],
    "stages": [
        {
            "depth": [1, 2],
            "width": [8, 16],
            "token_mixers": ["identity", "dwconv"],
            "patterns": ["uniform", "free"],
        },
        {
            "depth": [1],
            "width": [16, 24],
            "token_mixers": ["identity", "attention"],
            "downsample": ["pool"],
        },
    ],
    "head": {"name": "classifier", "pool": "gap", "norm": "layernorm"},
}
DATA = {"name": "synthetic", "size": 96}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_dict(TINY)


@pytest.fixture(scope="module")
def macs(space: SearchSpace) -> ExpectedCost:
    return ExpectedCost(space, AnalyticCost("macs"))


def _config(**fields: Any) -> DifferentiableConfig:
    penalty = fields.pop("penalty", {"metric": "macs", "weight": 0.0})
    base = {"steps": 6, "arch_lr": 0.05, "arch_start": 0.0, "penalty": penalty, **fields}
    return DifferentiableConfig.from_dict(
        base, supernet={"batch_size": 16, "checkpoint_every": 2, "seed": 0}
    )


def _brute_force(space: SearchSpace, probs: list[torch.Tensor], cost: Any) -> float:
    """Sum over every decision vector (inactive entries included) of its probability times the
    cost of the spec it decodes to."""
    p = [x.double().numpy() for x in probs]
    total, cache = 0.0, {}
    for values in itertools.product(*(range(d.size) for d in space.dims)):
        spec = space.decode(list(values))
        if spec.id not in cache:
            cache[spec.id] = cost(spec)
        total += float(np.prod([p[d][v] for d, v in enumerate(values)])) * cache[spec.id]
    return total


def _random_probs(space: SearchSpace, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    # float64: the brute force multiplies every dimension's probabilities, so they must sum to 1
    return [
        torch.softmax(2 * torch.randn(d.size, generator=gen, dtype=torch.float64), 0)
        for d in space.dims
    ]


@pytest.mark.parametrize("metric", ["macs", "params"])
def test_expected_cost_equals_the_brute_force_expectation(space: SearchSpace, metric: str) -> None:
    expected = ExpectedCost(space, AnalyticCost(metric))
    probs = _random_probs(space, 1)
    exact = _brute_force(space, probs, lambda s: getattr(spec_cost(s), metric))
    assert float(expected(probs)) == pytest.approx(exact, rel=1e-10)
    for spec in (space.sample(0), space.sample(1)):
        assert expected.of_spec(spec) == getattr(spec_cost(spec), metric)


def test_expected_latency_from_a_table_is_its_corrected_sum(
    space: SearchSpace, tmp_path: Path
) -> None:
    from predictors.lut import LookupTablePredictor

    predictor = LookupTablePredictor(cache_dir=tmp_path, repeats=3, warmup=1, min_sample_ms=0.05)
    expected = ExpectedCost(space, TableLatency(predictor, (1.5, 0.01, 0.2)))
    assert expected.metric == "latency_ms@host"
    assert len(predictor.table) == expected.signatures  # every op it may price is in the table
    spec = space.sample(3)
    sums, ops, _ = predictor.op_sums([spec])
    assert expected.of_spec(spec) == pytest.approx(1.5 * sums[0] + 0.01 * ops[0] + 0.2)


def test_gradient_of_the_expected_cost_is_finite_and_nonzero(
    space: SearchSpace, macs: ExpectedCost
) -> None:
    logits = [torch.zeros(d.size, requires_grad=True) for d in space.dims]
    macs([torch.softmax(x, 0) for x in logits]).backward()
    grads = {d.name: x.grad for d, x in zip(space.dims, logits, strict=True)}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    for name in ("stem", "stages[0].width", "stages[1].width", "num_stages"):
        assert grads[name].abs().sum() > 0, name  # type: ignore[union-attr]
    # wider is costlier: the gradient pushes the wider choice's logit up the cost
    assert grads["stages[0].width"][1] > grads["stages[0].width"][0]  # type: ignore[index]


def test_huge_penalty_picks_the_cheapest_spec(
    space: SearchSpace, macs: ExpectedCost, tmp_path: Path
) -> None:
    cheapest = min(spec_cost(s).macs for s in space.enumerate())
    heavy = search(
        space,
        DATA,
        _config(steps=20, penalty={"metric": "macs", "weight": 100.0}),
        tmp_path / "heavy",
        expected=macs,
    )
    free = search(space, DATA, _config(steps=20), tmp_path / "free", expected=macs)
    assert heavy.spec_cost == cheapest and spec_cost(heavy.spec).macs == cheapest
    # without a penalty nothing pulls the distribution towards the cheapest spec
    assert free.expected_cost > heavy.expected_cost * 2
    for result in (heavy, free):
        assert space.contains(result.spec) and not result.violations
        assert result.finished and result.top1 is not None
        assert set(result.probabilities) == {d.name for d in space.dims}
        assert all(abs(sum(p.values()) - 1) < 1e-4 for p in result.probabilities.values())
    written = json.loads((tmp_path / "heavy" / "arch.json").read_text())
    assert written["spec_id"] == heavy.spec.id and written["metric"] == "macs"


def test_cross_entropy_alone_moves_the_mixer_logits(
    space: SearchSpace, macs: ExpectedCost, tmp_path: Path
) -> None:
    """With no penalty the logits still learn: the straight-through weights on the sampled
    paths carry the loss's gradient into the decisions' logits."""
    search(space, DATA, _config(steps=4), tmp_path / "run", expected=macs)
    arch = load_checkpoint(tmp_path / "run" / CHECKPOINT)["arch"]
    names = [d.name for d in space.dims]
    moved = {names[int(k.split(".")[1])] for k, v in arch.items() if v.abs().sum() > 0}
    assert {"stages[0].width", "stages[0].channel_mixer", "stem"} <= moved


def test_resumed_search_equals_an_uninterrupted_one(
    space: SearchSpace, macs: ExpectedCost, tmp_path: Path
) -> None:
    cfg = _config(penalty={"metric": "macs", "weight": 1.0})
    whole = search(space, DATA, cfg, tmp_path / "whole", expected=macs)
    part = search(space, DATA, cfg, tmp_path / "cut", expected=macs, stop_after=3)
    assert not part.finished and part.steps == 3 and part.top1 is None
    assert not (tmp_path / "cut" / "arch.json").exists()
    resumed = search(space, DATA, cfg, tmp_path / "cut", expected=macs)
    assert resumed.resumed and resumed.steps == whole.steps
    a = load_checkpoint(tmp_path / "whole" / CHECKPOINT)
    b = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    for key in ("arch", "weights"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert a["history"] == b["history"]
    assert resumed.spec == whole.spec and resumed.probabilities == whole.probabilities
    with pytest.raises(DifferentiableError, match="different differentiable config") as err:
        search(space, DATA, replace(cfg, arch_lr=0.5), tmp_path / "cut", expected=macs)
    assert len(str(err.value).splitlines()) == 1 and "arch_lr" in str(err.value)


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"penalty": {"metric": "flops"}}, "differentiable.penalty.metric"),
        ({"tau_max": 0.1, "tau_min": 1.0}, "differentiable.tau_min"),
        ({"steps": 0}, "differentiable.steps"),
        ({"temperature": 1.0}, "differentiable.temperature"),
        ({"penalty": {"weight": -1}}, "differentiable.penalty.weight"),
    ],
)
def test_bad_config_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], block: dict[str, Any], field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"space": TINY, "differentiable": block}))
    assert cli(["supernet", "differentiable", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and field in err


def test_cli_writes_arch_json_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "d.yaml"
    config = {
        "name": "d",
        "space": TINY,
        "data": "synthetic",
        "data_options": {"size": 64},
        "runs_dir": str(tmp_path / "runs"),
        "supernet": {"batch_size": 16},
        "differentiable": {"steps": 3, "penalty": {"metric": "params", "weight": 1.0}},
    }
    path.write_text(yaml.safe_dump(config))
    assert cli(["supernet", "differentiable", str(path), "--quiet"]) == 0
    arch = json.loads((tmp_path / "runs" / "d" / "arch.json").read_text())
    space = SearchSpace.from_dict(TINY)
    from search_space.spec import ArchSpec

    spec = ArchSpec.from_dict(arch["spec"])
    assert space.contains(spec) and arch["spec_id"] == spec.id
    assert arch["metric"] == "params" and arch["spec_cost"] == spec_cost(spec).params
    assert arch["expected_cost"] > 0 and set(arch["probabilities"]) == {d.name for d in space.dims}
    assert "arch:" in capsys.readouterr().out
    # the same command again finds the finished checkpoint
    assert cli(["supernet", "differentiable", str(path), "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "runs" / "d" / CHECKPOINT)["step"] == 3


def test_decisions_map_to_the_paths_they_select() -> None:
    assert target_of("stages[1].patterns[2].blocks[0]") == ("token", 1, 0)
    assert target_of("stages[0].pattern") == ("token", 0, -1)
    assert target_of("stages[2].patterns[1].other") == ("token", 2, -1)
    assert target_of("stages[0].channel_mixer") == ("channel", 0, -1)
    assert target_of("stages[1].width") == ("stage", 1, -1)
    assert target_of("stem") == ("stem", -1, -1)
    assert target_of("num_stages") == ("output", -1, -1)


def test_soft_weights_and_the_multiplicative_penalty_run(
    space: SearchSpace, macs: ExpectedCost, tmp_path: Path
) -> None:
    cfg = _config(hard=False, penalty={"metric": "macs", "weight": 2.0, "form": "multiplicative"})
    result = search(space, DATA, cfg, tmp_path / "soft", expected=macs)
    assert result.finished and space.contains(result.spec)
    final = result.history[-1]
    # multiplicative: the architecture loss is the cross-entropy scaled by (E / reference)^2
    ratio = final["expected_cost"] / result.reference
    assert final["arch_loss"] == pytest.approx(final["arch_ce"] * ratio**2, rel=1e-5)
