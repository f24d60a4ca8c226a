"""`evaluators.fulltrain` through its Python API: the recipe file, early stopping, mixup/CutMix and
EMA, starting from a supernet's weights, and a folder that refuses another spec or recipe."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evaluators.fulltrain import (
    TrainError,
    TrainRecipe,
    load_recipe,
    load_trained,
    read_metrics,
    recipe_from_dict,
    recipe_to_dict,
    train_spec,
)
from evaluators.fulltrain.augment import BatchMixer, check_mixing, one_hot
from evaluators.fulltrain.checkpoint import folder_lock
from evaluators.supernet.train import load_supernet
from mixnas.cli import main as cli
from search_space import SearchSpace, build_model
from tests.test_supernet_train import DATA, MINI
from tests.test_train_command import tiny_spec

SMALL = {"name": "synthetic", "options": {"size": 160}}
# layer norms only: training with a zero lr leaves its validation accuracy exactly where it was
# (batch norm's running statistics would still move)
LN_ONLY = {**MINI, "name": "mini_ln", "norms": ["layernorm"]}
FAST = TrainRecipe(epochs=2, batch_size=16, lr=0.01, warmup_epochs=0.5)


def test_recipe_defaults_round_trip_and_yaml_off(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text("")
    assert load_recipe(path) == TrainRecipe()
    path.write_text("epochs: 7\namp: off\ndata: digits\n")
    recipe = load_recipe(path)
    assert recipe.epochs == 7 and recipe.amp == "off" and recipe.data.name == "digits"
    changed = replace(recipe, mixup_alpha=0.2, ema_decay=0.99, lr=3)
    path.write_text(yaml.safe_dump(recipe_to_dict(changed)))
    assert load_recipe(path) == changed and load_recipe(path).lr == 3.0
    with pytest.raises(TrainError, match=r"min_lr: must be at most lr"):
        recipe_from_dict({"lr": 1e-4, "min_lr": 1e-3})
    with pytest.raises(TrainError, match=r"x.yaml: batch_size: must be an integer >= 1 \(got 0\)"):
        recipe_from_dict({"batch_size": 0}, "x.yaml")
    with pytest.raises(TrainError, match=r"data.test_fraction: must be a fraction in \[0, 1\)"):
        recipe_from_dict({"data": {"test_fraction": 1}})


def test_mixing_needs_fitting_inputs() -> None:
    tokens = SearchSpace.from_dict(
        {**MINI, "input": {"kind": "tokens", "seq_len": 8, "vocab_size": 16, "num_classes": 4}}
    )
    inp = tokens.sample(0).input
    with pytest.raises(TrainError, match="mixup_alpha: token ids cannot be mixed"):
        check_mixing(TrainRecipe(mixup_alpha=0.2), inp)
    with pytest.raises(TrainError, match="cutmix_alpha: CutMix pastes image boxes"):
        check_mixing(TrainRecipe(cutmix_alpha=1.0), inp)
    check_mixing(TrainRecipe(mixup_alpha=0.2, mix_prob=0.0), inp)  # off: nothing to refuse


def test_batch_mixer_mixes_inputs_and_targets_alike() -> None:
    x = torch.arange(4 * 8 * 8, dtype=torch.float32).reshape(4, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3])
    cutmix = BatchMixer(TrainRecipe(cutmix_alpha=1.0), 4, np.random.default_rng(0))
    mixed, targets = cutmix(x, y)
    assert targets is not None
    assert torch.allclose(targets.sum(dim=1), torch.ones(4))
    # the share of each image that stayed its own is its label's weight in the target
    kept = (mixed == x).float().mean(dim=(1, 2, 3))
    smoothed = one_hot(y, 4, 0.1)
    lam = (targets[0] - smoothed[3]) / (smoothed[0] - smoothed[3])
    assert float(lam[0]) == pytest.approx(float(kept[0]))
    mixup = BatchMixer(TrainRecipe(mixup_alpha=0.4), 4, np.random.default_rng(1))
    mixed, targets = mixup(x, y)
    assert targets is not None and not torch.equal(mixed, x)
    lam0 = float((mixed[0] - x[3]).flatten()[0] / (x[0] - x[3]).flatten()[0])
    assert float(targets[0, 0]) == pytest.approx(lam0 * 0.925 + (1 - lam0) * 0.025, abs=1e-5)
    off = BatchMixer(TrainRecipe(mixup_alpha=0.4, mix_prob=0.0), 4, np.random.default_rng(0))
    assert off(x, y)[1] is None


def test_early_stopping_stops_after_patience_epochs(tmp_path: Path) -> None:
    # an lr too small to move the weights: validation top-1 never gains min_delta
    recipe = replace(FAST, epochs=10, lr=1e-12, min_lr=0.0, patience=2, min_delta=0.5)
    spec = SearchSpace.from_dict(LN_ONLY).sample(0)
    result = train_spec(spec, tmp_path / "out", recipe, SMALL, progress=False)
    assert result.stopped_early and result.epochs_run == 3
    rows = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    record = json.loads((tmp_path / "out" / "train_record.json").read_text())
    assert record["stopped_early"] and record["epochs_run"] == 3 and record["best_epoch"] == 1
    # without patience the same run goes all the way
    whole = train_spec(spec, tmp_path / "all", replace(recipe, patience=0), SMALL, progress=False)
    assert not whole.stopped_early and whole.epochs_run == 10


def test_eval_every_skips_validation_between(tmp_path: Path) -> None:
    recipe = replace(FAST, epochs=3, eval_every=2)
    train_spec(tiny_spec(), tmp_path / "out", recipe, SMALL, progress=False)
    rows = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert [r["val_top1"] is None for r in rows] == [True, False, False]  # 2, and the last


def test_mixup_cutmix_and_ema_train_and_best_holds_the_ema(tmp_path: Path) -> None:
    # one epoch: its weights are the best ones, so best.pt must be the EMA's
    recipe = replace(
        FAST,
        epochs=1,
        mixup_alpha=0.4,
        cutmix_alpha=1.0,
        mix_prob=0.9,
        ema_decay=0.5,
        drop_path_rate=0.1,
    )
    out = tmp_path / "out"
    result = train_spec(tiny_spec(), out, recipe, SMALL, progress=False)
    assert result.best_val_top1 is not None and result.test_top1 is not None
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    ema = {k.removeprefix("module."): v for k, v in last["ema"].items() if k != "n_averaged"}
    assert best.keys() == last["model"].keys() == ema.keys()
    assert all(torch.equal(best[k], ema[k]) for k in best)
    assert any(not torch.equal(ema[k], last["model"][k]) for k in ema)
    _, model = load_trained(out)
    assert all(torch.equal(model.state_dict()[k], best[k]) for k in best)


def test_a_folder_refuses_another_spec_or_recipe(tmp_path: Path) -> None:
    out = tmp_path / "out"
    train_spec(tiny_spec(), out, replace(FAST, epochs=1), SMALL, progress=False)
    other = SearchSpace.from_dict(MINI).sample(5)
    assert other.id != tiny_spec().id
    with pytest.raises(TrainError, match="holds the training of spec"):
        train_spec(other, out, replace(FAST, epochs=1), SMALL, progress=False)
    with pytest.raises(TrainError, match=r"another recipe \(epochs: 1 -> 2\)"):
        train_spec(tiny_spec(), out, FAST, SMALL, progress=False)
    again = train_spec(tiny_spec(), out, FAST, SMALL, resume=False, progress=False)
    assert again.epochs_run == 2 and not again.already_done


def _supernet(tmp_path: Path) -> Path:
    config = {
        "name": "mini",
        "space": MINI,
        "data": "synthetic",
        "data_options": DATA,
        "runs_dir": str(tmp_path / "runs"),
        "supernet": {"steps": 4, "batch_size": 16, "checkpoint_every": 4},
    }
    path = tmp_path / "sn.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli(["supernet", "train", str(path), "--quiet"]) == 0
    return tmp_path / "runs" / "mini" / "supernet.pt"


def test_from_supernet_starts_from_the_inherited_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = _supernet(tmp_path)
    spec = tiny_spec()
    inherited = load_supernet(checkpoint)[0].extract(spec).state_dict()
    # an lr that leaves the weights where they start: they must be the supernet's
    recipe = replace(FAST, epochs=1, lr=1e-12, min_lr=0.0, weight_decay=0.0)
    out = tmp_path / "out"
    train_spec(spec, out, recipe, SMALL, from_supernet=checkpoint, progress=False)
    _, model = load_trained(out)
    fresh = build_model(spec, seed=recipe.seed).state_dict()
    params = [name for name, _ in model.named_parameters()]
    assert all(torch.allclose(model.state_dict()[k], inherited[k], atol=1e-8) for k in params)
    assert any(not torch.allclose(fresh[k], inherited[k]) for k in params)
    record = json.loads((out / "train_record.json").read_text())
    assert record["from_supernet"] == str(checkpoint)

    # a spec outside the supernet's space is one line, exit 2
    wider = spec.replace(stages=(replace(spec.stages[0], width=32),))
    path = tmp_path / "wider.json"
    path.write_text(wider.to_json())
    argv = ["train", str(path), "--from-supernet", str(checkpoint), "--out", str(tmp_path / "w")]
    assert cli([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not in the supernet's space" in err
    assert str(checkpoint) in err
    missing = ["train", str(path), "--from-supernet", str(tmp_path / "none.pt"), "--quiet"]
    assert cli(missing) == 2
    assert "--from-supernet" in capsys.readouterr().err


def test_a_folder_in_use_by_another_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with folder_lock(out), pytest.raises(TrainError, match=r"in use by another training run \(pid"):
        train_spec(tiny_spec(), out, FAST, SMALL, progress=False)
    assert train_spec(tiny_spec(), out, FAST, SMALL, progress=False).epochs_run == 2


def test_the_recipe_in_docs_training_md_is_the_defaults() -> None:
    """docs/training.md lists every recipe field with its default: it must stay true."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert recipe_from_dict(yaml.safe_load(block), "docs/training.md") == TrainRecipe()
    assert set(yaml.safe_load(block)) == set(recipe_to_dict(TrainRecipe()))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_on_the_cpu(tmp_path: Path, amp: str) -> None:
    result = train_spec(
        tiny_spec(), tmp_path / "out", replace(FAST, amp=amp), SMALL, progress=False
    )
    assert result.best_val_top1 is not None and result.epochs_run == 2
    last = torch.load(tmp_path / "out" / "checkpoints" / "last.pt", weights_only=True)
    assert ("scaler" in last) == (amp == "fp16")  # fp16 keeps its loss scaler for a resume
    assert all(v.dtype != torch.bfloat16 for v in last["model"].values())  # float32 weights


def test_loader_workers_change_nothing_but_the_speed(tmp_path: Path) -> None:
    recipe = replace(FAST, drop_path_rate=0.1, mixup_alpha=0.2)
    train_spec(tiny_spec(), tmp_path / "w0", recipe, SMALL, progress=False)
    train_spec(tiny_spec(), tmp_path / "w2", replace(recipe, num_workers=2), SMALL, progress=False)
    a, b = (
        torch.load(tmp_path / w / "checkpoints/last.pt", weights_only=True) for w in ("w0", "w2")
    )
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_recipe_built_in_python_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(TrainError, match=r"recipe: epochs: must be an integer >= 1 \(got 0\)"):
        train_spec(tiny_spec(), tmp_path / "out", replace(FAST, epochs=0), SMALL)
    assert not (tmp_path / "out").exists()
