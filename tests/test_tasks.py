"""Generated tasks (`evaluators.tasks`): determinism, balance, the disk cache, shape checks, the
correctness of labels and a few training steps on each through a search config."""

from __future__ import annotations

import dataclasses
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evaluators.data import Dataset, DatasetError, load_dataset
from evaluators.tasks import (
    TASKS,
    balanced_labels,
    listops,
    pathfinder,
    resolve,
    same_different,
    split_rng,
)
from search_space.errors import MixnasError
from search_space.spec import InputSpec

SMALL = {"n_train": 40, "n_val": 20, "n_test": 20}
PATHFINDER = InputSpec("image", 2, channels=1, resolution=(16, 16))
LISTOPS = InputSpec("tokens", 10, seq_len=48, vocab_size=16)
SHAPES = InputSpec("image", 10, channels=3, resolution=(16, 16))
SAME_DIFFERENT = InputSpec("image", 2, channels=3, resolution=(16, 16))
SPECS = {
    "pathfinder": PATHFINDER,
    "listops": LISTOPS,
    "textured_shapes": SHAPES,
    "same_different": SAME_DIFFERENT,
}
GRAY = InputSpec("image", 10, channels=1, resolution=(32, 32))
HUGE = InputSpec("image", 10, channels=3, resolution=(512, 512))
FIVE = InputSpec("image", 5, channels=3, resolution=(32, 32))


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MIXNAS_DATA_CACHE", str(folder))
    return folder


def _load(name: str, seed: int = 0, **options: Any) -> Dataset:
    return load_dataset(name, SPECS[name], seed=seed, **{**SMALL, **options})


def _tensors(data: Dataset) -> list[torch.Tensor]:
    return [data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test]


@pytest.mark.parametrize("name", list(SPECS))
def test_same_seed_same_tensors_other_seed_other_samples(name: str) -> None:
    first = _load(name, seed=3, cache=False)
    again = _load(name, seed=3, cache=False)
    assert all(torch.equal(a, b) for a, b in zip(_tensors(first), _tensors(again), strict=True))
    other = _load(name, seed=4, cache=False)
    assert not torch.equal(first.x_train, other.x_train)
    assert not torch.equal(first.x_test, other.x_test)
    assert first.x_train.shape[0] == 40 and first.x_test is not None
    assert first.x_test.shape[0] == 20


@pytest.mark.parametrize("name", list(SPECS))
def test_classes_balanced_exactly_in_every_split(name: str) -> None:
    data = _load(name)
    k = data.num_classes
    for y in (data.y_train, data.y_val, data.y_test):
        assert y is not None and y.dtype == torch.int64
        assert torch.bincount(y, minlength=k).tolist() == [len(y) // k] * k


def test_splits_are_drawn_independently() -> None:
    small = _load("pathfinder", n_train=20)
    large = _load("pathfinder", n_train=60)
    # the same samples (normalised by each training split's own statistics)
    for a, b in ((small.x_val, large.x_val), (small.x_test, large.x_test)):
        assert torch.equal(a > a.min(), b > b.min())
    assert torch.equal(small.y_val, large.y_val) and torch.equal(small.y_test, large.y_test)


@pytest.mark.parametrize("name", list(SPECS))
def test_cache_hit_returns_the_same_tensors_without_generating(
    name: str, _cache_in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _load(name)
    files = sorted(_cache_in_tmp.glob(f"{name}-*.npz"))
    assert len(files) == 3  # one per split

    def refuse(*args: Any) -> np.ndarray:
        raise AssertionError("generated again despite the cache")

    monkeypatch.setitem(TASKS, name, dataclasses.replace(TASKS[name], generate=refuse))
    again = _load(name)
    assert all(torch.equal(a, b) for a, b in zip(_tensors(first), _tensors(again), strict=True))
    with pytest.raises(AssertionError, match="despite the cache"):
        _load(name, seed=1)  # another seed is another key


def test_damaged_cache_file_is_regenerated(_cache_in_tmp: Path) -> None:
    first = _load("listops")
    for file in _cache_in_tmp.glob("listops-train-*.npz"):
        file.write_bytes(b"not a zip file")
    again = _load("listops")
    assert torch.equal(first.x_train, again.x_train)


@pytest.mark.parametrize(
    ("name", "spec", "options", "field"),
    [
        ("pathfinder", InputSpec("image", 2, channels=2, resolution=(32, 32)), {}, "channels"),
        ("pathfinder", InputSpec("image", 2, channels=1, resolution=(8, 8)), {}, "resolution"),
        ("pathfinder", InputSpec("tokens", 2, seq_len=1000, vocab_size=2), {}, "seq_len"),
        ("pathfinder", PATHFINDER, {"path_length": 0}, "pathfinder.path_length"),
        ("pathfinder", PATHFINDER, {"dot_radius": 9.0}, "dot_radius"),
        ("listops", InputSpec("image", 10, channels=3, resolution=(32, 32)), {}, "kind"),
        ("listops", InputSpec("tokens", 10, seq_len=64, vocab_size=8), {}, "vocab_size"),
        ("listops", InputSpec("tokens", 10, seq_len=3, vocab_size=16), {}, "seq_len"),
        ("listops", InputSpec("tokens", 10, seq_len=32, feature_dim=4), {}, "vocab_size"),
        ("listops", LISTOPS, {"max_depth": 2.5}, "listops.max_depth"),
        ("listops", LISTOPS, {"difficulty": 2}, "listops.difficulty"),
        ("textured_shapes", GRAY, {}, "channels"),
        ("textured_shapes", SHAPES, {"max_radius": 40.0}, "radii"),
        ("textured_shapes", HUGE, {}, "resolution"),
        ("textured_shapes", FIVE, {}, "num_classes"),
        ("textured_shapes", SHAPES, {"val_fraction": 0.2}, "unknown option 'val_fraction'"),
        ("pathfinder", PATHFINDER, {"n_val": 0}, "pathfinder.n_val"),
        ("same_different", dataclasses.replace(GRAY, num_classes=2), {}, "channels"),
        ("same_different", dataclasses.replace(HUGE, num_classes=2), {}, "resolution"),
        ("same_different", FIVE, {}, "num_classes"),
        ("same_different", SAME_DIFFERENT, {"min_distance": 40.0}, "min_distance"),
        ("same_different", SAME_DIFFERENT, {"colours": 9}, "same_different.colours"),
    ],
)
def test_impossible_inputs_and_options_rejected_in_one_line(
    name: str, spec: InputSpec, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(name, spec, seed=0, **{**SMALL, "cache": False, **options})
    message = str(info.value)
    assert isinstance(info.value, MixnasError)  # the CLI prints it and exits 2
    assert "\n" not in message and message.startswith(name) and field in message
    assert "allowed" in message or "must be" in message


def test_listops_unfillable_length_fails_after_bounded_draws() -> None:
    # flat pairs are 4 tokens long, and min_fill 1.0 asks for 6: no draw is ever kept
    spec = InputSpec("tokens", 10, seq_len=6, vocab_size=16)
    options = {"n_train": 10, "n_val": 10, "n_test": 0, "cache": False}
    with pytest.raises(DatasetError, match="min_fill") as info:
        load_dataset("listops", spec, **options, min_fill=1.0, max_depth=1, max_args=2)
    assert "\n" not in str(info.value)


# -- listops: labels against an evaluator written here -------------------------------------------


def _evaluate_tokens(ids: list[int]) -> int:
    """The value of a token-id sequence (docs/tasks.md: 0 pad, 1-10 digits 0-9, 11-14 [MIN
    [MAX [MED [SM, 15 ]), checking that it is one complete expression followed by padding."""
    stack: list[tuple[str, list[int]]] = []
    result = None
    for position, token in enumerate(ids):
        if token == 0:
            assert stack == [] and result is not None, "padding inside an expression"
            assert all(t == 0 for t in ids[position:]), "tokens after padding"
            break
        assert result is None, "tokens after the root expression closed"
        if 1 <= token <= 10:
            stack[-1][1].append(token - 1)
        elif 11 <= token <= 14:
            stack.append((("MIN", "MAX", "MED", "SM")[token - 11], []))
        else:
            assert token == 15 and stack, f"unexpected token {token}"
            op, args = stack.pop()
            assert len(args) >= 2
            ordered = sorted(args)
            value = {
                "MIN": ordered[0],
                "MAX": ordered[-1],
                "MED": ordered[(len(ordered) - 1) // 2],
                "SM": sum(args) % 10,
            }[op]
            if stack:
                stack[-1][1].append(value)
            else:
                result = value
    assert result is not None and not stack, "an expression cut short"
    return result


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_listops_labels_are_the_values_of_complete_expressions(difficulty: str) -> None:
    data = _load("listops", difficulty=difficulty, cache=False)
    _, settings, _, _ = resolve("listops", LISTOPS, {"difficulty": difficulty})
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.dtype == torch.int64 and x.shape[1] == LISTOPS.seq_len
        assert int(x.max()) < listops.VOCAB_SIZE <= LISTOPS.vocab_size
        for ids, label in zip(x.tolist(), y.tolist(), strict=True):
            assert _evaluate_tokens(ids) == label
            assert sum(1 for t in ids if t) >= settings["min_length"]


def test_listops_example_from_the_docs() -> None:
    ids = [12, 3, 10, 11, 5, 8, 15, 1, 15]  # [MAX 2 9 [MIN 4 7 ] 0 ]
    assert listops.decode(ids) == "[MAX 2 9 [MIN 4 7 ] 0 ]"
    assert _evaluate_tokens(ids) == 9


# -- pathfinder: the dots of a positive are joined by a path -------------------------------------


def _reachable(mask: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> bool:
    """8-connected flood fill over ``mask`` from ``start``."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    queue = deque([start])
    seen[start] = True
    while queue:
        r, c = queue.popleft()
        if (r, c) == goal:
            return True
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                nr, nc = r + dr, c + dc
                if 0 <= nr < h and 0 <= nc < w and mask[nr, nc] and not seen[nr, nc]:
                    seen[nr, nc] = True
                    queue.append((nr, nc))
    return False


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_pathfinder_positives_joined_negatives_not(difficulty: str) -> None:
    spec = InputSpec("image", 2, channels=1, resolution=(32, 32))
    options = {**SMALL, "difficulty": difficulty, "cache": False}
    _, settings, _, _ = resolve("pathfinder", spec, options)
    # the generator's own draw of the training split, with the centre lines of the marked paths
    rng = split_rng("pathfinder", 0, "train")
    labels = balanced_labels(40, 2, rng)
    images, extra = pathfinder.draw(labels, rng, settings, traces=True)
    data = load_dataset("pathfinder", spec, seed=0, **options)
    assert torch.equal(data.y_train, torch.from_numpy(labels))
    assert np.array_equal(data.x_train[:, 0].numpy() > data.x_train.min().item(), images > 0)
    for i, label in enumerate(labels):
        a, b = (tuple(int(v) for v in dot) for dot in extra["dots"][i])
        assert images[i][a] == 255 and images[i][b] == 255  # both dots drawn
        joined = _reachable(extra["trace_a"][i], a, b)
        assert joined == bool(label), f"image {i}: label {label} but joined={joined}"
        if not label:  # and the path of dot B does not lead back to dot A either
            assert not _reachable(extra["trace_b"][i], b, a)
        # the marked paths are drawn: their dashes (3 of every 5 pixels) light most of the line
        on_path = extra["trace_a"][i] | extra["trace_b"][i]
        assert (images[i][on_path] == 255).mean() > 0.5


def _marks(image: np.ndarray, side: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """(top, left, fill colour) of every framed mark: a ``side`` square whose border is black."""
    black = (image == 0).all(axis=0)
    found = []
    for top in range(image.shape[1] - side + 1):
        for left in range(image.shape[2] - side + 1):
            window = black[top : top + side, left : left + side]
            border = np.concatenate([window[0], window[-1], window[:, 0], window[:, -1]])
            if border.all() and not window[1:-1, 1:-1].any():
                found.append((top, left, tuple(image[:, top + 1, left + 1])))
    return found


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_same_different_labels_say_whether_the_far_marks_match(difficulty: str) -> None:
    spec = InputSpec("image", 2, channels=3, resolution=(32, 32))
    _, settings, _, _ = resolve("same_different", spec, {**SMALL, "difficulty": difficulty})
    # clean images: no noise, so the marks can be read back exactly (clutter strokes may cross
    # them in the generated data, never the frame test below, which needs every border pixel)
    settings = {**settings, "noise": 0.0, "clutter": 0}
    rng = np.random.default_rng(0)
    labels = balanced_labels(400, 2, rng)
    images = same_different.generate(labels, rng, settings)
    side, palette = settings["mark"], np.rint(same_different.PALETTE * 255).astype(np.uint8)
    first_colours = {0: [], 1: []}
    for image, label in zip(images, labels, strict=True):
        marks = _marks(image, side)
        assert len(marks) == 2
        (ta, la, ca), (tb, lb, cb) = marks
        assert max(abs(ta - tb), abs(la - lb)) >= settings["min_distance"]
        assert (ca == cb) == bool(label)
        index = [i for i, p in enumerate(palette) if tuple(p) == ca]
        assert index and index[0] < settings["colours"]  # a palette colour of the preset
        first_colours[int(label)].append(index[0])
    # each mark alone says nothing: its colour is spread alike over the palette in both classes
    for label in (0, 1):
        counts = np.bincount(first_colours[label], minlength=settings["colours"])
        assert counts.min() > 0.5 * counts.mean()


def test_pathfinder_as_a_flattened_sequence() -> None:
    spec = InputSpec("tokens", 2, seq_len=256, vocab_size=2)
    data = load_dataset("pathfinder", spec, seed=0, **SMALL)
    image = load_dataset("pathfinder", PATHFINDER, seed=0, **SMALL)
    assert data.x_train.shape == (40, 256) and data.x_train.dtype == torch.int64
    lit = image.x_train[:, 0].reshape(40, -1) > image.x_train.min()
    assert torch.equal(data.x_train.bool(), lit)  # the same images, one token per pixel


def test_pathfinder_repeats_gray_to_three_channels() -> None:
    spec = InputSpec("image", 2, channels=3, resolution=(16, 16))
    data = load_dataset("pathfinder", spec, seed=0, **SMALL)
    assert data.x_train.shape == (40, 3, 16, 16)
    assert torch.equal(data.x_train[:, 0], data.x_train[:, 2])


def test_mapping_names_the_dataset_and_carries_options() -> None:
    data = load_dataset({"name": "listops", **SMALL, "difficulty": "easy"}, LISTOPS, seed=0)
    assert data.sizes == (40, 20)
    with pytest.raises(DatasetError, match=r"data\.name"):
        load_dataset({"n_train": 4}, LISTOPS)


# -- a few training steps on each task, configured like a search -------------------------------


def _declaration(name: str) -> dict[str, Any]:
    spec = SPECS[name]
    stem = (
        {"name": "token_embed", "pos_embed": ["learned"]}
        if spec.kind == "tokens"
        else {"name": "patch_embed", "patch_size": [2]}
    )
    return {
        "name": f"tiny-{name}",
        "input": spec.to_dict(),
        "stem": [stem],
        "num_stages": [1],
        "token_mixers": {"dwconv": {"kernel": 3}},
        "channel_mixers": {"mlp": {"ratio": [2.0]}},
        "stages": [{"depth": [1], "width": [16], "patterns": ["uniform"]}],
        "head": {"name": "classifier"},
    }


@pytest.mark.parametrize("name", list(SPECS))
def test_train_evaluator_runs_on_each_task_from_a_config(name: str) -> None:
    from mixnas.config import parse_config
    from mixnas.job import prepare
    from mixnas.pipeline import TrialPipeline

    config = parse_config(
        {
            "space": _declaration(name),
            "objectives": [{"metric": "top1", "direction": "maximize"}],
            "evaluators": [
                {
                    "name": "train",
                    "budget": {"steps": 3},
                    "data": {"name": name, **SMALL, "difficulty": "easy"},
                    "options": {"batch_size": 8},
                }
            ],
            "strategy": "random",
            "budget": {"trials": 1},
        }
    )
    job = prepare(config)
    spec = job.space.sample(0)
    outcome = TrialPipeline(config.evaluators, seed=0).run(spec, {})
    assert outcome.status == "ok", outcome.error
    assert outcome.metrics["steps"] == 3 and 0 <= outcome.metrics["top1"] <= 100
