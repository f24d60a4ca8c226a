"""Task kinds (issue 24): the registry, the head check, exact metrics (the segmentation confusion
matrix, PSNR and SSIM against brute force), and short and full training of the dense tasks."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators import EvalContext, task_kinds
from evaluators.fulltrain import TrainError, TrainRecipe, recipe_from_dict, train_spec
from evaluators.fulltrain.checkpoint import read_metrics
from evaluators.task_kinds.dense_seg import UNLABELLED, SegmentationMetrics
from evaluators.task_kinds.dense_sr import SuperResolutionMetrics, psnr, ssim
from evaluators.training import ShortTraining, TrainingError, _stop_rule
from search_space import ArchSpec, SearchSpace, load_space
from search_space.errors import RegistryError

TINY_CLASSIFIER = {
    "name": "tiny",
    "input": {"kind": "image", "channels": 3, "resolution": 16, "num_classes": 10},
    "stem": [{"name": "patch_embed", "patch_size": [2]}],
    "num_stages": [1],
    "token_mixers": {"dwconv": {"kernel": 3}},
    "channel_mixers": {"mlp": {"ratio": [2.0]}},
    "stages": [{"depth": [2], "width": [32], "patterns": ["uniform"]}],
    "head": {"name": "classifier"},
}
SMALL = {"n_train": 64, "n_val": 24, "n_test": 16}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MIXNAS_DATA_CACHE", str(folder))
    return folder


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


def _sample(space: str, seed: int = 0) -> ArchSpec:
    return load_space(space).sample(np.random.default_rng(seed))


def _smallest(space: str, n: int = 12) -> ArchSpec:
    """The cheapest of ``n`` samples: quick to train on the CPU."""
    from search_space import spec_cost

    specs = [_sample(space, seed) for seed in range(n)]
    return min(specs, key=lambda s: spec_cost(s).macs)


# -- the registry and the head check ----------------------------------------------------------


def test_builtin_kinds_and_what_their_heads_produce() -> None:
    assert task_kinds.names()[:4] == list(task_kinds.BUILTIN)
    outputs = {n: task_kinds.get(n).output for n in task_kinds.BUILTIN}
    assert outputs == {
        "classification": "class",
        "causal_lm": "token",
        "segmentation": "mask",
        "super_resolution": "image",
    }
    primaries = {n: task_kinds.get(n).primary for n in task_kinds.BUILTIN}
    assert primaries == {
        "classification": "top1",
        "causal_lm": "top1",
        "segmentation": "miou",
        "super_resolution": "psnr",
    }
    with pytest.raises(RegistryError, match="known: causal_lm, classification"):
        task_kinds.get("detection")
    with pytest.raises(RegistryError, match="already registered"):
        task_kinds.register(task_kinds.get("segmentation"))


def test_the_task_is_inferred_from_the_head() -> None:
    assert task_kinds.infer(_sample("unet_seg")) == "segmentation"
    assert task_kinds.infer(_sample("sr")) == "super_resolution"
    assert task_kinds.infer(_sample("causal_lm")) == "causal_lm"
    assert task_kinds.infer(SearchSpace.from_dict(TINY_CLASSIFIER).sample(0)) == "classification"


def test_a_head_that_does_not_fit_the_task_is_one_line() -> None:
    seg = _sample("unet_seg")
    message = task_kinds.mismatch("classification", seg.head.name)
    assert message == (
        "task classification: the spec's head 'seg_head' predicts a class per pixel; allowed: "
        "task segmentation for it, or a classifier head"
    )
    assert "sr_head" in task_kinds.mismatch("super_resolution", seg.head.name)
    assert task_kinds.mismatch("segmentation", seg.head.name) == ""
    assert "unknown task 'segment'" in task_kinds.mismatch("segment", seg.head.name)
    result = ShortTraining(task="super_resolution").evaluate(seg, EvalContext(budget={"steps": 1}))
    assert result.status == "failed" and "'sr_head'" in result.error and "\n" not in result.error
    # a search config's check, before any trial: the heads of the space
    with pytest.raises(TrainingError) as err:
        ShortTraining(task="segmentation").check_heads(["classifier"])
    assert "task segmentation: the spec's head 'classifier'" in _one_line(err)
    with pytest.raises(TrainingError) as err:
        ShortTraining(task="segmantation").check_heads(["seg_head"])
    assert "allowed: classification, causal_lm, segmentation" in _one_line(err)
    ShortTraining(task="segmentation").check_heads(["seg_head"])
    classifier = SearchSpace.from_dict(TINY_CLASSIFIER).sample(0)
    result = ShortTraining().evaluate(classifier, EvalContext(data="seg_shapes"))
    assert result.status == "failed" and "allowed: task segmentation" in result.error
    assert ShortTraining(task="segmentation").metrics[:4] == ("top1", "miou", "dice", "loss")
    assert ShortTraining().metrics[0] == "top1"  # classification: the class's declaration


def test_a_plug_in_adds_a_kind_after_the_builtins() -> None:
    """What a ``mixnas.datasets`` plug-in module does: register a kind; lookups list it last."""
    from evaluators.task_kinds.dense_sr import SuperResolution
    from search_space.registry import discard, registering_as

    class Denoising(SuperResolution):
        name = "denoising"
        primary = "l1"
        higher_is_better = False

    with registering_as("test-plugin"):
        task_kinds.register(Denoising())
    try:
        assert task_kinds.names()[-1] == "denoising"
        assert task_kinds.KINDS.origin("denoising") == "test-plugin"
        assert task_kinds.infer(_sample("sr")) == "super_resolution"  # built-ins come first
        assert task_kinds.mismatch("denoising", "sr_head") == ""
        kind = task_kinds.get("denoising")
        assert kind.better(0.1, 0.2) and not kind.better(0.3, 0.2)
        rule = _stop_rule(0.2, kind)  # lower is better: the threshold is a ceiling
        assert rule is not None and rule(0, {"l1": 0.3}) and not rule(0, {"l1": 0.1})
    finally:
        discard("test-plugin")
    assert "denoising" not in task_kinds.names()


def test_stop_at_rung_reads_the_primary_metric() -> None:
    rule = _stop_rule([30.0, 40.0], task_kinds.get("segmentation"))
    assert rule is not None
    assert rule(0, {"miou": 25.0, "top1": 90.0}) and not rule(1, {"miou": 45.0, "top1": 1.0})
    rule = _stop_rule(20.0, task_kinds.get("super_resolution"))
    assert rule is not None and rule(0, {"psnr": 19.0}) and not rule(0, {"psnr": 21.0})


# -- segmentation metrics ---------------------------------------------------------------------


def _brute_segmentation(pred: np.ndarray, truth: np.ndarray, k: int) -> dict[str, float]:
    labelled = truth != UNLABELLED
    p, t = pred[labelled], truth[labelled]
    ious, dices = [], []
    for c in range(k):
        tp = np.sum((p == c) & (t == c))
        fp = np.sum((p == c) & (t != c))
        fn = np.sum((p != c) & (t == c))
        if tp + fp + fn:
            ious.append(tp / (tp + fp + fn))
            dices.append(2 * tp / (2 * tp + fp + fn))
    return {
        "top1": 100.0 * float(np.mean(p == t)),
        "miou": 100.0 * float(np.mean(ious)),
        "dice": 100.0 * float(np.mean(dices)),
    }


def test_segmentation_metrics_are_exact_over_the_split_whatever_the_batches() -> None:
    gen = torch.Generator().manual_seed(0)
    k = 5
    logits = torch.randn(13, k, 9, 7, generator=gen)
    truth = torch.randint(0, k - 1, (13, 9, 7), generator=gen)  # class 4 never in the target
    truth[:, 0, :3] = UNLABELLED
    logits[:, 3] -= 100.0  # class 3: in the target, never predicted
    logits[:, 4] -= 100.0  # class 4: nowhere: left out of the means
    whole = SegmentationMetrics(k)
    whole.update(logits, truth)
    batched = task_kinds.get("segmentation").metrics(k)
    for begin, end in ((0, 1), (1, 6), (6, 13)):
        batched.update(logits[begin:end], truth[begin:end])
    assert torch.equal(whole.sums, batched.sums)
    got = batched.result()
    want = _brute_segmentation(logits.argmax(1).numpy(), truth.numpy(), k)
    for key in ("top1", "miou", "dice"):
        assert math.isclose(got[key], want[key], rel_tol=1e-12), key
    labelled = truth != UNLABELLED
    ce = torch.nn.functional.cross_entropy(logits, truth, ignore_index=UNLABELLED)
    assert math.isclose(got["loss"], float(ce), rel_tol=1e-5)
    assert int(labelled.sum()) == int(whole.confusion().sum())
    lazy = task_kinds.get("segmentation").metrics()  # the class count from the outputs
    lazy.update(logits, truth)
    assert lazy.result() == whole.result()


def test_segmentation_loss_skips_unlabelled_pixels_and_ignores_smoothing() -> None:
    kind = task_kinds.get("segmentation")
    logits = torch.randn(2, 3, 4, 4)
    truth = torch.randint(0, 3, (2, 4, 4))
    masked = truth.clone()
    masked[0] = UNLABELLED
    assert torch.allclose(
        kind.loss(logits, masked, label_smoothing=0.3),
        torch.nn.functional.cross_entropy(logits[1:], truth[1:]),
    )


# -- super-resolution metrics -----------------------------------------------------------------


def _brute_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of one C x H x W pair, window by window (Gaussian 11, sigma 1.5, valid)."""
    size, sigma = 11, 1.5
    g = np.exp(-((np.arange(size) - 5.0) ** 2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    per_channel = []
    for a, b in zip(x, y, strict=True):
        values = []
        for i in range(a.shape[0] - size + 1):
            for j in range(a.shape[1] - size + 1):
                pa, pb = a[i : i + size, j : j + size], b[i : i + size, j : j + size]
                ma, mb = (w * pa).sum(), (w * pb).sum()
                va = (w * (pa - ma) ** 2).sum()
                vb = (w * (pb - mb) ** 2).sum()
                cov = (w * (pa - ma) * (pb - mb)).sum()
                values.append(
                    ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                )
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def test_ssim_is_one_on_equal_images_and_matches_brute_force() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 14, generator=gen)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)
    y = (x + 0.1 * torch.randn(2, 3, 16, 14, generator=gen)).clamp(0, 1)
    got = ssim(x, y)
    for i in range(2):
        want = _brute_ssim(x[i].double().numpy(), y[i].double().numpy())
        assert math.isclose(float(got[i]), want, rel_tol=1e-5), (float(got[i]), want)
    assert 0.0 < float(got.mean()) < 1.0


def test_psnr_known_values_and_batch_invariance() -> None:
    x = torch.full((2, 3, 8, 8), 0.5)
    assert torch.allclose(psnr(x + 0.1, x), torch.full((2,), 20.0), atol=1e-4)  # MSE 0.01
    assert float(psnr(x, x)[0]) == 100.0  # an exact image: the cap
    gen = torch.Generator().manual_seed(2)
    hr = torch.rand(7, 3, 12, 12, generator=gen)
    out = hr + 0.2 * torch.randn(7, 3, 12, 12, generator=gen)  # partly outside [0, 1]
    whole = SuperResolutionMetrics()
    whole.update(out, hr)
    parts = SuperResolutionMetrics()
    parts.update(out[:3], hr[:3])
    parts.update(out[3:], hr[3:])
    a, b = whole.result(), parts.result()
    assert all(math.isclose(a[k], b[k], rel_tol=1e-9) for k in a), (a, b)
    clamped = out.clamp(0, 1)
    assert math.isclose(a["psnr"], float(psnr(clamped, hr).mean()), rel_tol=1e-6)
    assert math.isclose(a["l1"], float((clamped - hr).abs().mean()), rel_tol=1e-6)
    assert math.isclose(a["loss"], float((out - hr).abs().mean()), rel_tol=1e-6)
    assert a["loss"] > a["l1"]  # clamping to the image range only helps


# -- short training ---------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["unet_seg", "sr"])
def test_short_training_of_a_dense_task_gives_finite_repeatable_metrics(space: str) -> None:
    spec = _smallest(space)
    task = task_kinds.infer(spec)
    ev = ShortTraining(task=task, batch_size=16, data_options=SMALL)
    result = ev.evaluate(spec, EvalContext(budget={"steps": 25}, seed=3))
    assert result.status == "ok", result.error
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values()) and m["steps"] == 25
    if task == "segmentation":
        assert set(m) >= {"top1", "miou", "dice", "loss"}
        assert 0 <= m["miou"] <= 100 and 0 <= m["dice"] <= 100 and 0 <= m["top1"] <= 100
        assert m["top1"] > 50  # the background alone is most pixels
    else:
        assert set(m) >= {"psnr", "ssim", "l1", "loss", "psnr_bilinear"}
        assert 5 < m["psnr"] < 60 and -1 <= m["ssim"] <= 1 and 0 <= m["l1"] <= 1
        assert 10 < m["psnr_bilinear"] < 40
    again = ev.evaluate(spec, EvalContext(budget={"steps": 25}, seed=3))
    assert again.metrics == {**m, "train_seconds": again.metrics["train_seconds"]}


# -- full training ----------------------------------------------------------------------------

FAST = TrainRecipe(epochs=2, batch_size=16, lr=0.005, warmup_epochs=0.0)


@pytest.mark.parametrize("space", ["unet_seg", "sr"])
def test_full_training_picks_the_best_by_the_task_metric(tmp_path: Path, space: str) -> None:
    spec = _smallest(space)
    data = {"name": "synthetic", "options": SMALL}  # the default name: the task's own data
    result = train_spec(spec, tmp_path / "out", FAST, data, progress=False)
    record = json.loads((tmp_path / "out" / "train_record.json").read_text())
    kind = task_kinds.get(task_kinds.infer(spec))
    assert record["task"] == result.task == kind.name
    assert record["primary_metric"] == result.primary == kind.primary
    rows = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert set(rows[0]) == {"epoch", "lr", "train_loss", "seconds"} | {
        f"val_{c}" for c in kind.columns
    }
    best = max(rows, key=lambda r: r[f"val_{kind.primary}"])
    assert record["best_val"] == result.best_val == best[f"val_{kind.primary}"]
    assert record["best_epoch"] == best["epoch"]
    assert set(record["test"]) >= set(kind.columns)
    assert all(math.isfinite(record["test"][c]) for c in kind.columns)
    if kind.name == "super_resolution":
        assert record["best_val_top1"] is None and record["test_top1"] is None
        assert "psnr_bilinear" in record["test"]
    else:
        assert record["best_val_top1"] == record["best_val_metrics"]["top1"]


def test_full_training_refuses_mixing_and_a_task_the_head_cannot_serve(tmp_path: Path) -> None:
    spec = _sample("unet_seg")
    with pytest.raises(TrainError) as err:
        train_spec(spec, tmp_path / "a", replace(FAST, mixup_alpha=0.2), {}, progress=False)
    assert "mixup_alpha: mixup and CutMix mix class labels" in _one_line(err)
    with pytest.raises(TrainError) as err:
        train_spec(spec, tmp_path / "b", replace(FAST, task="classification"), {}, progress=False)
    assert "task classification: the spec's head 'seg_head'" in _one_line(err)
    with pytest.raises(TrainError) as err:
        recipe_from_dict({"task": "segment"}, "recipe.yaml")
    assert "recipe.yaml: task: must be one of classification" in _one_line(err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
