"""Supernet training: the sandwich and SPOS recipes, resume after a kill with no loss beyond the
last checkpoint, the ``supernet`` evaluator and the ``mixnas supernet train`` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import evaluators
from evaluators import EvalContext
from evaluators.data import load_dataset
from evaluators.supernet import Supernet
from evaluators.supernet.schedule import subnets_of_step
from evaluators.supernet.train import (
    RecipeConfig,
    SupernetError,
    load_checkpoint,
    load_supernet,
    train_supernet,
)
from mixnas.cli import main as cli
from search_space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
MINI: dict[str, Any] = {
    "name": "mini",
    "input": {"kind": "image", "channels": 1, "resolution": 8, "num_classes": 4},
    "stem": {"name": "patch_embed", "patch_size": 2, "norm": "layernorm"},
    "token_mixers": {"dwconv": {"kernel": [3, 5]}, "identity": {}, "attention": {"head_dim": 4}},
    "channel_mixers": {"mlp": {"ratio": [1.0, 2.0]}},
    "norms": ["layernorm", "batchnorm"],
    "stages": [{"depth": [1, 2], "width": [8, 16], "patterns": ["uniform", "free"]}],
    "head": {"name": "classifier", "pool": "gap", "norm": "layernorm"},
}
DATA = {"size": 128}
CFG = RecipeConfig(recipe="sandwich", steps=8, batch_size=16, checkpoint_every=2, num_random=1)


def _setup() -> tuple[Supernet, Any]:
    space = SearchSpace.from_dict(MINI)
    return Supernet(space, seed=0), load_dataset("synthetic", space.decl.input, seed=0, **DATA)


def _weights(supernet: Supernet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in supernet.state_dict().items()}


def test_recipes_pick_their_subnets() -> None:
    supernet, _ = _setup()
    for step in range(5):
        top, bottom, *rand = subnets_of_step(supernet, CFG, step)
        assert len(rand) == CFG.num_random
        # extremes of the elastic dimensions, within the mixer types drawn for the step
        assert top.depths == [2] and top.widths == [16]
        assert bottom.depths == [1] and bottom.widths == [8]
        assert {b.token_mixer.name for b in top.blocks} >= {
            b.token_mixer.name for b in bottom.blocks
        }
        kernels = [b.token_mixer["kernel"] for b in top.blocks if b.token_mixer.name == "dwconv"]
        assert all(k == 5 for k in kernels)
        assert all(b.channel_mixer["ratio"] == 2.0 for b in top.blocks)
    mixers = {
        tuple(b.token_mixer.name for b in subnets_of_step(supernet, CFG, t)[0].blocks)
        for t in range(12)
    }
    assert len(mixers) > 1  # the teacher's mixer types change from step to step
    assert subnets_of_step(supernet, CFG, 3) == subnets_of_step(supernet, CFG, 3)
    fixed = replace(CFG, extremes="global")
    assert subnets_of_step(supernet, fixed, 3)[:2] == [supernet.largest(), supernet.smallest()]
    spos = RecipeConfig(recipe="spos", steps=8)
    drawn = {subnets_of_step(supernet, spos, t)[0].id for t in range(20)}
    assert len(drawn) > 5 and all(len(subnets_of_step(supernet, spos, t)) == 1 for t in range(3))


def test_training_lowers_the_loss_and_moves_shared_weights() -> None:
    supernet, data = _setup()
    before = _weights(supernet)
    out = train_supernet(
        supernet, data, RecipeConfig(recipe="sandwich", steps=30, batch_size=32, num_random=1)
    )
    assert out["steps"] == 30 and len(out["history"]) == 30
    assert np.mean(out["history"][-5:]) < np.mean(out["history"][:5])
    after = _weights(supernet)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_in_place_distillation_trains_students_on_the_teacher() -> None:
    supernet, data = _setup()
    cfg = RecipeConfig(recipe="sandwich", steps=3, batch_size=16, num_random=1, distill=True)
    out = train_supernet(supernet, data, cfg)
    labels, _ = _setup()
    plain = train_supernet(labels, data, replace(cfg, distill=False))
    # the same subnets and batches: only the students' targets differ
    assert out["history"][0] != plain["history"][0] and all(np.isfinite(out["history"]))
    # distill_start: the first two of three steps learn the labels, the third distils
    later, _ = _setup()
    delayed = train_supernet(later, data, replace(cfg, distill_start=0.5))
    assert delayed["history"][:2] == plain["history"][:2]
    assert delayed["history"][2] != plain["history"][2]


def test_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    supernet, data = _setup()
    whole = train_supernet(supernet, data, CFG)
    ckpt = tmp_path / "sn.pt"
    first, _ = _setup()
    train_supernet(first, data, CFG, checkpoint=ckpt, stop_after=5)  # "killed" after step 5
    assert load_checkpoint(ckpt)["step"] == 4  # the last checkpoint; step 5 is lost
    resumed, _ = _setup()
    out = train_supernet(resumed, data, CFG, checkpoint=ckpt)
    assert out["resumed"] and out["history"] == whole["history"]
    reference = _weights(supernet)
    assert all(torch.equal(reference[k], v) for k, v in _weights(resumed).items())


def test_moving_average_is_the_trained_supernet_and_resumes(tmp_path: Path) -> None:
    cfg = replace(CFG, ema=0.5)
    raw, data = _setup()
    train_supernet(raw, data, replace(cfg, ema=0.0))
    averaged, _ = _setup()
    whole = train_supernet(averaged, data, cfg)
    # the same updates: the raw weights match; the result is their average, not the last ones
    shared = [k for k, v in _weights(raw).items() if v.is_floating_point()]
    assert any(not torch.equal(_weights(raw)[k], _weights(averaged)[k]) for k in shared)
    ckpt = tmp_path / "ema.pt"
    first, _ = _setup()
    train_supernet(first, data, cfg, checkpoint=ckpt, stop_after=5)
    resumed, _ = _setup()
    out = train_supernet(resumed, data, cfg, checkpoint=ckpt)
    assert out["history"] == whole["history"]
    reference = _weights(averaged)
    assert all(torch.equal(reference[k], v) for k, v in _weights(resumed).items())
    # the stored checkpoint keeps the raw weights for resuming; loading it gives the average
    loaded, _ = load_supernet_from(ckpt, tmp_path)
    assert all(torch.equal(reference[k], v) for k, v in _weights(loaded).items())


def test_moving_average_of_one_update_by_hand() -> None:
    """decay d after updates w1, w2: the average is d * w1 + (1 - d) * w2 (torch's EMA starts
    from the first update's weights)."""
    cfg = RecipeConfig(recipe="sandwich", steps=2, batch_size=16, num_random=1, ema=0.25, lr=0.05)
    steps: list[dict[str, torch.Tensor]] = []
    for last in (1, 2):
        supernet, data = _setup()
        train_supernet(supernet, data, replace(cfg, ema=0.0), stop_after=last)
        steps.append(_weights(supernet))
    averaged, data = _setup()
    train_supernet(averaged, data, cfg)
    got = _weights(averaged)
    for k, w1 in steps[0].items():
        if w1.is_floating_point() and k in dict(averaged.named_parameters()):
            assert torch.allclose(got[k], 0.25 * w1 + 0.75 * steps[1][k], atol=1e-6), k


def load_supernet_from(ckpt: Path, tmp_path: Path) -> tuple[Supernet, dict[str, Any]]:
    """`load_supernet` needs the space in the checkpoint: store it as the CLI does."""
    state = torch.load(ckpt, weights_only=True)
    state["space"] = MINI
    path = tmp_path / "with_space.pt"
    torch.save(state, path)
    return load_supernet(path)


_KILLED = """
import sys
sys.path.insert(0, {root!r})
from tests.test_supernet_train import CFG, _setup
from evaluators.supernet.train import train_supernet
from dataclasses import replace
import pathlib, time
supernet, data = _setup()
def slow(step, total, loss):
    time.sleep(0.3)  # leaves time to kill between checkpoints
train_supernet(supernet, data, replace(CFG, steps=40), checkpoint=pathlib.Path({ckpt!r}),
               progress=slow)
"""


@pytest.mark.slow  # a subprocess importing torch; test_resume_equals_... covers the logic fast
def test_resume_after_a_kill(tmp_path: Path) -> None:
    ckpt = tmp_path / "killed.pt"
    code = _KILLED.format(root=str(ROOT), ckpt=str(ckpt))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 4:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the training ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = load_checkpoint(ckpt)["step"]
    assert 4 <= kept < 40
    cfg = replace(CFG, steps=40)
    resumed, data = _setup()
    out = train_supernet(resumed, data, cfg, checkpoint=ckpt)
    reference, _ = _setup()
    whole = train_supernet(reference, data, cfg)
    assert out["resumed"] and out["steps"] == 40 and out["history"] == whole["history"]
    ref = _weights(reference)
    assert all(torch.equal(ref[k], v) for k, v in _weights(resumed).items())


def test_a_changed_recipe_does_not_resume(tmp_path: Path) -> None:
    supernet, data = _setup()
    ckpt = tmp_path / "sn.pt"
    train_supernet(supernet, data, CFG, checkpoint=ckpt, stop_after=2)
    with pytest.raises(SupernetError, match="different recipe"):
        train_supernet(supernet, data, RecipeConfig(steps=9), checkpoint=ckpt)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"recipe": "ofa"}, "recipe"),
        ({"steps": 0}, "steps"),
        ({"stepz": 3}, "stepz"),
        ({"ema": 1.0}, "ema"),
    ],
)
def test_bad_recipe_options_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(SupernetError, match=f"supernet.{field}"):
        RecipeConfig.from_dict(data)


def _trained_run(tmp_path: Path) -> Path:
    config = {
        "name": "mini",
        "space": MINI,
        "data": "synthetic",
        "data_options": DATA,
        "runs_dir": str(tmp_path / "runs"),
        "supernet": {"steps": 4, "batch_size": 16, "num_random": 1, "checkpoint_every": 2},
    }
    path = tmp_path / "sn.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli(["supernet", "train", str(path), "--quiet"]) == 0
    return tmp_path / "runs" / "mini"


def test_cli_trains_into_the_run_folder_and_the_evaluator_reads_it(tmp_path: Path) -> None:
    run = _trained_run(tmp_path)
    summary = json.loads((run / "supernet.json").read_text())
    assert summary["steps"] == 4 and (run / "supernet.pt").is_file()
    supernet, state = load_supernet(run / "supernet.pt")
    assert state["data"]["name"] == "synthetic" and state["step"] == 4
    # the same command again finds the finished checkpoint and trains no further
    config = tmp_path / "sn.yaml"
    assert cli(["supernet", "train", str(config), "--quiet"]) == 0
    assert load_checkpoint(run / "supernet.pt")["step"] == 4

    assert "supernet" in evaluators.names()
    evaluator = evaluators.create("supernet", checkpoint=str(run / "supernet.pt"))
    spec = supernet.space.sample(0)
    result = evaluator.evaluate(spec, EvalContext())
    assert result.ok and 0 <= result.metrics["top1"] <= 100
    again = evaluator.evaluate(spec, EvalContext())
    assert again.metrics == result.metrics
    wider = spec.replace(stages=(spec.stages[0].__class__(32, *_tail(spec.stages[0])),))
    failed = evaluator.evaluate(wider, EvalContext())
    assert failed.status == "failed" and "does not hold" in failed.error


def _tail(stage: Any) -> tuple[Any, ...]:
    return stage.downsample, stage.blocks


def test_cli_bad_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"space": MINI, "supernet": {"recipe": "ofa"}}))
    assert cli(["supernet", "train", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "supernet.recipe" in err and "sandwich" in err
    path.write_text(yaml.safe_dump({"space": MINI, "epochs": 3}))
    assert cli(["supernet", "train", str(path), "--quiet"]) == 2
    assert "epochs" in capsys.readouterr().err


def test_evaluator_rejects_unknown_options_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SupernetError, match="unknown option 'steps'"):
        evaluators.create("supernet", steps=3)
    with pytest.raises(SupernetError, match="does not exist"):
        evaluators.create("supernet", checkpoint=str(tmp_path / "none.pt"))


@pytest.mark.slow  # a whole search job with its report and export
def test_mixnas_search_scores_trials_with_the_supernet(tmp_path: Path) -> None:
    from mixnas import load_trials

    run = _trained_run(tmp_path)
    config = {
        "name": "over-supernet",
        "seed": 0,
        "space": MINI,
        "objectives": [
            {"metric": "top1", "direction": "maximize"},
            {"metric": "params", "direction": "minimize"},
        ],
        "evaluators": [{"name": "supernet", "options": {"checkpoint": str(run / "supernet.pt")}}],
        "strategy": {"name": "random"},
        "budget": {"trials": 4},
        "runs_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli(["search", str(path), "-q"]) == 0
    trials = load_trials(tmp_path / "runs" / "over-supernet")
    assert len(trials) == 4
    assert (trials["status"] == "ok").all()
    assert trials["top1"].between(0, 100).all() and trials["top1"].notna().all()
