"""The supernet trains and scores the task its space's heads learn (issue 24): next-token
prediction, segmentation and super-resolution, besides classification."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from evaluators import task_kinds
from evaluators.supernet import Supernet
from evaluators.supernet.train import (
    RecipeConfig,
    SupernetError,
    evaluate_subnet,
    supernet_task,
    train_supernet,
)
from search_space import load_space

SMALL = {"n_train": 64, "n_val": 32, "n_test": 0}
CASES = [
    ("causal_lm", "causal_lm", "perplexity"),
    ("unet_seg", "segmentation", "miou"),
    ("sr", "super_resolution", "psnr"),
]


@pytest.mark.parametrize(("space_name", "task", "metric"), CASES)
def test_supernet_trains_and_scores_the_spaces_task(
    space_name: str, task: str, metric: str, tmp_path: Path
) -> None:
    space = load_space(space_name)
    kind = supernet_task(space)
    assert kind.name == task
    data = kind.dataset(None, space.decl.input, seed=0, options=SMALL)
    supernet = Supernet(space, seed=0)
    cfg = RecipeConfig(steps=3, batch_size=8, checkpoint_every=3)
    summary = train_supernet(supernet, data, cfg, checkpoint=tmp_path / "supernet.pt")
    assert summary["steps"] == 3 and all(math.isfinite(v) for v in summary["history"])
    scores = evaluate_subnet(supernet, space.sample(0), data, batch_size=8, eval_batch_size=16)
    assert set(kind.metrics_names) <= set(scores) and math.isfinite(scores[metric])


def test_distillation_is_refused_for_a_dense_task_in_one_line() -> None:
    space = load_space("sr")
    data = supernet_task(space).dataset(None, space.decl.input, seed=0, options=SMALL)
    cfg = RecipeConfig(steps=1, batch_size=8, recipe="sandwich", distill=True)
    with pytest.raises(SupernetError) as err:
        train_supernet(Supernet(space, seed=0), data, cfg)
    message = str(err.value)
    assert "\n" not in message and "distill" in message and "super_resolution" in message


def test_supernet_command_and_evaluator_follow_the_task(tmp_path: Path) -> None:
    """`mixnas supernet train` on the sr space uses sr_images by default and records the task;
    the supernet evaluator then reports the task's metrics (psnr), so a search can use them."""
    from evaluators import create
    from evaluators.base import EvalContext
    from mixnas.cli import main

    config = {
        "name": "sn-sr",
        "space": "sr",
        "data_options": SMALL,
        "runs_dir": str(tmp_path),
        "supernet": {"steps": 2, "batch_size": 8, "checkpoint_every": 2},
    }
    path = tmp_path / "sn.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["supernet", "train", str(path), "--quiet"]) == 0
    checkpoint = tmp_path / "sn-sr" / "supernet.pt"
    evaluator = create("supernet", checkpoint=str(checkpoint), batch_size=8)
    assert evaluator.metrics == task_kinds.get("super_resolution").metrics_names
    result = evaluator.evaluate(load_space("sr").sample(1), EvalContext())
    assert result.status == "ok", result.error
    assert math.isfinite(result.metrics["psnr"])
