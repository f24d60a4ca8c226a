"""Offline datasets and the short-training evaluator (``train``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evaluators import FAILED, OK, PRUNED, EvalContext, create
from evaluators.data import DatasetError, load_dataset
from evaluators.training import ShortTraining
from search_space import ArchSpec, InputSpec, SearchSpace, build_model, load_space

# a tiny image space: one stage of two depthwise-conv blocks at width 32 trains in ~1 s on CPU
TINY: dict[str, Any] = {
    "name": "tiny",
    "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 10},
    "stem": [{"name": "patch_embed", "patch_size": [2]}],
    "num_stages": [1],
    "token_mixers": {"dwconv": {"kernel": 3}},
    "channel_mixers": {"mlp": {"ratio": [2.0]}},
    "stages": [{"depth": [2], "width": [32], "patterns": ["uniform"]}],
    "head": {"name": "classifier"},
}
IMAGE = InputSpec("image", 10, channels=3, resolution=(16, 16))


@pytest.fixture(scope="module")
def tiny_spec() -> ArchSpec:
    return SearchSpace.from_dict(TINY).sample(0)


def _check_fits(spec: ArchSpec, x: torch.Tensor) -> None:
    """The spec's model accepts the data and returns one logit per class."""
    out = build_model(spec, seed=0).eval()(x[:2])
    assert out.shape == (2, spec.input.num_classes)


# -- datasets ----------------------------------------------------------------------------------


def test_digits_resized_to_spec(tiny_spec: ArchSpec) -> None:
    data = load_dataset("digits", IMAGE, seed=0)
    assert data.x_train.shape[1:] == (3, 16, 16)
    assert sum(data.sizes) == 1797 and data.y_train.dtype == torch.int64
    assert set(data.y_val.tolist()) <= set(range(10))
    # normalised: roughly zero mean, unit variance
    assert abs(float(data.x_train.mean())) < 0.1 and 0.8 < float(data.x_train.std()) < 1.2
    _check_fits(tiny_spec, data.x_val)
    again = load_dataset("digits", IMAGE, seed=0)
    assert torch.equal(again.y_val, data.y_val)  # a deterministic split
    assert not torch.equal(load_dataset("digits", IMAGE, seed=1).y_val, data.y_val)


def test_synthetic_tokens_match_sequence_space() -> None:
    spec = load_space("sequence").sample(0)
    data = load_dataset("synthetic", spec.input, seed=0, size=200)
    assert data.x_train.dtype == torch.int64
    assert data.x_train.shape[1:] == (spec.input.seq_len,)
    assert int(data.x_train.max()) < spec.input.vocab_size
    assert set(data.y_train.tolist()) == set(range(spec.input.num_classes))
    _check_fits(spec, data.x_val)


def test_synthetic_features_and_default() -> None:
    features = InputSpec("tokens", 3, seq_len=12, feature_dim=5)
    data = load_dataset(None, features, size=50)  # None means synthetic
    assert data.x_train.shape[1:] == (12, 5) and data.x_train.dtype == torch.float32
    assert data.sizes == (40, 10)


def test_npz_and_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=rng.random((20, 8, 8, 1)).astype(np.float32), y=np.arange(20) % 10)
    data = load_dataset(str(path), IMAGE, seed=0)
    assert data.x_train.shape == (16, 3, 16, 16) and data.sizes == (16, 4)

    pil = pytest.importorskip("PIL.Image")
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
            pil.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    folder = load_dataset(tmp_path / "imgs", IMAGE, seed=0)
    assert folder.x_train.shape[1:] == (3, 16, 16)
    assert sorted(folder.y_train.tolist() + folder.y_val.tolist()) == [0, 0, 0, 1, 1, 1]


def test_bad_data_gives_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, inputs=np.zeros((4, 8, 8)), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(DatasetError) as err:
        load_dataset(bad, IMAGE)
    text = str(err.value)
    assert "\n" not in text and str(bad) in text and "'x'" in text

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match=r"not a readable \.npz"):
        load_dataset(corrupt, IMAGE)

    labels = tmp_path / "labels.npz"
    np.savez(labels, x=np.zeros((4, 8, 8)), y=np.array([0, 1, 2, 12]))
    with pytest.raises(DatasetError, match=r"y must lie in 0\.\.9"):
        load_dataset(labels, IMAGE)

    with pytest.raises(DatasetError, match="unknown dataset 'cifar'; allowed: digits, synthetic"):
        load_dataset("cifar", IMAGE)
    with pytest.raises(DatasetError, match="unknown option 'sizes'"):
        load_dataset("synthetic", IMAGE, sizes=3)
    with pytest.raises(DatasetError, match="image dataset"):
        load_dataset("digits", InputSpec("tokens", 4, seq_len=8, vocab_size=16))


# -- training ----------------------------------------------------------------------------------


def test_training_learns_synthetic_and_is_deterministic(tiny_spec: ArchSpec) -> None:
    evaluator = create("train")
    assert isinstance(evaluator, ShortTraining)
    context = EvalContext(seed=0, budget={"steps": 100}, options={"rungs": [25, 50, 500]})
    first = evaluator.evaluate(tiny_spec, context)
    assert first.status == OK, first.error
    assert first.metrics["top1"] > 40.0  # chance is 10%
    assert first.metrics["steps"] == 100
    assert set(first.metrics) >= {"top1", "loss", "train_loss", "train_seconds", "steps"}
    # rungs past the budget are dropped; each rung records its own validation metrics
    assert [r["steps"] for r in first.rungs] == [25.0, 50.0]
    assert first.rungs[0]["top1"] <= first.metrics["top1"]
    second = evaluator.evaluate(tiny_spec, context)
    for key in ("top1", "loss", "train_loss", "steps"):
        assert second.metrics[key] == first.metrics[key]
    assert second.rungs == first.rungs


def test_digits_and_epoch_budget(tiny_spec: ArchSpec) -> None:
    result = ShortTraining(batch_size=128).evaluate(
        tiny_spec, EvalContext(seed=1, budget={"epochs": 1}, data="digits")
    )
    assert result.status == OK, result.error
    assert result.metrics["steps"] == 1438 // 128
    assert result.metrics["top1"] > 10.0


def test_stop_at_rung_prunes(tiny_spec: ArchSpec) -> None:
    seen: list[int] = []

    def stop(index: int, metrics: Any) -> bool:
        seen.append(index)
        return index == 0

    budget = {"steps": 40}
    result = create("train", rungs=[10, 20]).evaluate(
        tiny_spec, EvalContext(budget=budget, options={"stop_at_rung": stop})
    )
    assert result.status == PRUNED and seen == [0]
    assert result.metrics["steps"] == 10 and len(result.rungs) == 1
    # a threshold no model reaches prunes at the first rung too
    result = create("train", rungs=[10, 20], stop_at_rung=101.0).evaluate(
        tiny_spec, EvalContext(budget=budget)
    )
    assert result.status == PRUNED and result.metrics["steps"] == 10


def test_failures_are_results_not_crashes(tiny_spec: ArchSpec, tmp_path: Path) -> None:
    # a learning rate that blows up the loss
    result = create("train", lr=1e30, grad_clip=0).evaluate(
        tiny_spec, EvalContext(budget={"steps": 20})
    )
    assert result.status == FAILED and result.error
    # a missing dataset file and an unknown option fail the evaluation, not the caller
    result = create("train").evaluate(tiny_spec, EvalContext(data=str(tmp_path / "none.npz")))
    assert result.status == FAILED and "unknown dataset" in result.error
    result = create("train").evaluate(tiny_spec, EvalContext(options={"epochs": 3}))
    assert result.status == FAILED and "unknown training option 'epochs'" in result.error
    with pytest.raises(ValueError, match="unknown training option"):
        ShortTraining(learning_rate=0.1)
