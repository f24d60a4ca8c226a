"""Dense-task data (issue 24): the generated ``seg_shapes`` and ``sr_images`` (determinism, the
mask and the downsampling they promise, one-line refusals) and the user's segmentation and
super-resolution files (.npz and folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators import task_kinds
from evaluators.data import DatasetError, load_dataset
from evaluators.task_kinds.dense_sr import head_scale
from evaluators.tasks import resolve, seg_shapes, split_rng, sr_images
from evaluators.tasks.sr_images import downsample
from search_space import load_space
from search_space.spec import InputSpec

SMALL = {"n_train": 24, "n_val": 12, "n_test": 6}
SEG = InputSpec("image", 4, channels=3, resolution=(32, 32))
LR = InputSpec("image", 3, channels=3, resolution=(16, 16))


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MIXNAS_DATA_CACHE", str(folder))
    return folder


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


def _seg(source: str | Path | None, spec: InputSpec = SEG, **options: object):  # type: ignore[no-untyped-def]
    return task_kinds.get("segmentation").dataset(
        None if source is None else str(source), spec, seed=0, options=options
    )


def _sr(source: str | Path | None, spec: InputSpec = LR, **options: object):  # type: ignore[no-untyped-def]
    return task_kinds.get("super_resolution").dataset(
        None if source is None else str(source), spec, seed=0, options={"scale": 2, **options}
    )


# -- seg_shapes ------------------------------------------------------------------------------


def test_seg_shapes_images_and_masks_are_deterministic_and_shaped() -> None:
    data = load_dataset("seg_shapes", SEG, seed=0, **SMALL)
    assert data.x_train.shape == (24, 3, 32, 32) and data.y_train.shape == (24, 32, 32)
    assert data.y_train.dtype == torch.int64 and data.num_classes == 4
    assert data.x_test is not None and data.x_test.shape[0] == 6
    assert set(torch.unique(data.y_train).tolist()) == {0, 1, 2, 3}
    again = load_dataset("seg_shapes", SEG, seed=0, **SMALL, cache=False)
    assert torch.equal(again.x_val, data.x_val) and torch.equal(again.y_val, data.y_val)
    other = load_dataset("seg_shapes", SEG, seed=1, **SMALL)
    assert not torch.equal(other.y_val, data.y_val)


def test_seg_shapes_leading_class_is_balanced_and_masks_follow_the_drawing() -> None:
    spec = InputSpec("image", 6, channels=3, resolution=(32, 32))
    _, settings, _, _ = resolve("seg_shapes", spec, {"difficulty": "easy", "clutter": 0})
    images, masks = seg_shapes.generate_pairs(50, split_rng("seg_shapes", 0, "train"), settings)
    assert images.dtype == np.uint8 and masks.dtype == np.uint8
    # each of the 5 foreground classes leads 10 images and so appears in at least 10 masks
    present = np.array([[(m == c).any() for c in range(1, 6)] for m in masks])
    assert (present.sum(axis=0) >= 10).all()
    assert ((masks > 0).reshape(50, -1).any(axis=1)).all()  # every image has an object
    # without clutter or noise a background pixel is the smooth field: neighbours stay close
    field = images.astype(np.float32)
    jumps = np.abs(np.diff(field, axis=3)).max(axis=1)  # N x H x W-1
    both_background = (masks[:, :, 1:] == 0) & (masks[:, :, :-1] == 0)
    assert np.percentile(jumps[both_background], 99) < 0.03 * 255 + 0.06 * 255 * 4


def test_seg_shapes_gray_and_eleven_classes() -> None:
    gray = InputSpec("image", 11, channels=1, resolution=(24, 24))
    data = load_dataset("seg_shapes", gray, seed=0, **SMALL)
    assert data.x_train.shape == (24, 1, 24, 24) and int(data.y_train.max()) <= 10


@pytest.mark.parametrize(
    ("spec", "options", "expected"),
    [
        (InputSpec("image", 12, channels=3, resolution=(32, 32)), {}, "allowed: 2..11"),
        (InputSpec("image", 1, channels=3, resolution=(32, 32)), {}, "allowed: 2..11"),
        (InputSpec("image", 4, channels=3, resolution=(8, 8)), {}, "16..128"),
        (InputSpec("image", 4, channels=2, resolution=(32, 32)), {}, "allowed: 1 (gray)"),
        (SEG, {"min_objects": 4, "max_objects": 2}, "min_objects 4 > max_objects 2"),
        (SEG, {"max_radius": 20}, "do not fit"),
        (SEG, {"objects": 3}, "unknown option 'objects'"),
    ],
)
def test_seg_shapes_impossible_inputs_are_one_line(
    spec: InputSpec, options: dict[str, object], expected: str
) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("seg_shapes", spec, seed=0, **SMALL, **options)
    assert expected in _one_line(err) and "seg_shapes" in str(err.value)


# -- sr_images -------------------------------------------------------------------------------


def test_sr_images_lr_is_the_area_downsampling_of_hr() -> None:
    data = _sr(None, LR, **SMALL)
    assert data.x_train.shape == (24, 3, 16, 16) and data.y_train.shape == (24, 3, 32, 32)
    assert float(data.x_train.min()) >= 0.0 and float(data.y_train.max()) <= 1.0
    hr = torch.round(data.y_val * 255).to(torch.uint8).numpy()
    lr = torch.round(data.x_val * 255).to(torch.uint8).numpy()
    assert np.array_equal(downsample(hr, 2), lr)
    blocks = hr.reshape(12, 3, 16, 2, 16, 2).astype(np.float64).mean(axis=(3, 5))
    assert np.abs(blocks - lr).max() <= 0.5 + 1e-9
    again = _sr(None, LR, **SMALL)
    assert torch.equal(again.y_train, data.y_train)


def test_sr_images_scale_comes_from_the_head() -> None:
    spec = load_space("sr").sample(np.random.default_rng(0))
    kind = task_kinds.get("super_resolution")
    scale = head_scale(spec)
    assert kind.data_options(spec, {})["scale"] == scale
    with pytest.raises(DatasetError) as err:
        kind.data_options(spec, {"scale": scale + 1})
    assert f"upscales x{scale}" in _one_line(err)
    data = kind.dataset(None, spec.input, seed=0, options=kind.data_options(spec, SMALL))
    h, w = spec.input.resolution
    assert data.y_train.shape[-2:] == (scale * h, scale * w)


def test_sr_images_refuses_what_it_cannot_draw() -> None:
    with pytest.raises(DatasetError) as err:
        _sr(None, InputSpec("image", 3, channels=3, resolution=(96, 96)), scale=4)
    assert "8..64" in _one_line(err)
    with pytest.raises(DatasetError) as err:
        _sr(None, scale=5)
    assert "sr_images.scale" in _one_line(err)


def test_generating_twenty_thousand_examples_is_fast_enough() -> None:
    """Budget check at 2,000 (a tenth of the 20,000 per minute the docs promise, with slack)."""
    import time

    spec = InputSpec("image", 4, channels=3, resolution=(32, 32))
    for name, options in (("seg_shapes", {}), ("sr_images", {"scale": 2})):
        _, settings, _, _ = resolve(name, spec, options)
        gen = seg_shapes.generate_pairs if name == "seg_shapes" else sr_images.generate_pairs
        start = time.perf_counter()
        gen(2000, split_rng(name, 0, "train"), settings)
        assert time.perf_counter() - start < 12.0, name


# -- the user's segmentation data -------------------------------------------------------------


def test_segmentation_npz_channels_last_masks_resized_with_nearest(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (10, 64, 64, 3)).astype(np.uint8)
    y = np.zeros((10, 64, 64), dtype=np.int64)
    y[:, 10:40, 20:50] = 2
    y[:, 0:4, :] = 255  # unlabelled
    np.savez(tmp_path / "seg.npz", x=x, y=y)
    data = _seg(tmp_path / "seg.npz", val_fraction=0.3)
    assert data.x_train.shape == (7, 3, 32, 32) and data.y_train.shape == (7, 32, 32)
    assert set(torch.unique(data.y_val).tolist()) == {0, 2, 255}


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"x": np.zeros((4, 3, 8, 8))}, "missing array 'y'"),
        ({"x": np.zeros((4, 3, 8, 8)), "y": np.full((4, 8, 8), 7)}, "mask value 7"),
        ({"x": np.zeros((4, 3, 8, 8)), "y": np.zeros((4, 8, 8), np.float32)}, "integer"),
        ({"x": np.zeros((4, 3, 8, 8)), "y": np.zeros((3, 8, 8), np.int64)}, "3 masks"),
        ({"x": np.zeros((4, 3, 8, 8)), "y": np.zeros((4, 6, 8), np.int64)}, "masks are 6x8"),
    ],
)
def test_bad_segmentation_npz_is_one_line_naming_the_file(
    tmp_path: Path, arrays: dict[str, np.ndarray], expected: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(DatasetError) as err:
        _seg(path)
    assert expected in _one_line(err) and str(path) in str(err.value)


def test_segmentation_folder_of_images_and_png_masks(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(5):
        Image.fromarray(np.full((40, 40, 3), 40 * i, np.uint8)).save(tmp_path / f"images/{i}.png")
        mask = np.zeros((40, 40), np.uint8)
        mask[: 8 * (i + 1)] = 3
        Image.fromarray(mask, mode="L").save(tmp_path / f"masks/{i}.png")
    data = _seg(tmp_path)
    assert data.x_train.shape[1:] == (3, 32, 32) and data.y_train.shape[1:] == (32, 32)
    assert set(torch.unique(torch.cat([data.y_train, data.y_val])).tolist()) == {0, 3}
    (tmp_path / "masks/4.png").unlink()
    with pytest.raises(DatasetError) as err:
        _seg(tmp_path)
    assert "4.png: missing" in _one_line(err)


def test_unknown_segmentation_source_names_the_generated_ones() -> None:
    with pytest.raises(DatasetError) as err:
        _seg("textured_shapes")
    assert "seg_shapes" in _one_line(err) and "images/ and masks/" in str(err.value)


# -- the user's super-resolution data ---------------------------------------------------------


def test_sr_npz_of_hr_derives_lr_and_crops_other_sizes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 255, (6, 3, 32, 32)).astype(np.uint8)
    np.savez(tmp_path / "hr.npz", hr=hr)
    data = _sr(tmp_path / "hr.npz")
    both = torch.cat([data.y_train, data.y_val])
    assert both.shape == (6, 3, 32, 32)
    lr = torch.cat([data.x_train, data.x_val])
    assert torch.allclose(lr, torch.nn.functional.avg_pool2d(both, 2), atol=0.5 / 255 + 1e-6)
    # a wider image of floats: centre-cropped to a square, resized to 32x32
    np.savez(tmp_path / "wide.npz", hr=rng.random((4, 48, 80, 3)).astype(np.float32))
    wide = _sr(tmp_path / "wide.npz")
    assert wide.y_train.shape[1:] == (3, 32, 32) and wide.x_train.shape[1:] == (3, 16, 16)


def test_sr_npz_with_lr_and_hr_and_its_errors(tmp_path: Path) -> None:
    hr = np.zeros((4, 3, 32, 32), np.uint8)
    np.savez(tmp_path / "pair.npz", lr=np.zeros((4, 3, 16, 16), np.uint8), hr=hr)
    assert _sr(tmp_path / "pair.npz").x_train.shape[1:] == (3, 16, 16)
    np.savez(tmp_path / "off.npz", lr=np.zeros((4, 3, 12, 12), np.uint8), hr=hr)
    with pytest.raises(DatasetError) as err:
        _sr(tmp_path / "off.npz")
    assert "lr 12x12" in _one_line(err) and "off.npz" in str(err.value)
    np.savez(tmp_path / "range.npz", hr=np.full((4, 3, 32, 32), 2.0, np.float32))
    with pytest.raises(DatasetError) as err:
        _sr(tmp_path / "range.npz")
    assert "[0, 1]" in _one_line(err)
    np.savez(tmp_path / "none.npz", x=hr)
    with pytest.raises(DatasetError) as err:
        _sr(tmp_path / "none.npz")
    assert "missing array 'hr'" in _one_line(err)


def test_sr_folder_of_hr_images(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((50, 70, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    data = _sr(tmp_path)
    assert data.y_train.shape[1:] == (3, 32, 32) and data.x_train.shape[1:] == (3, 16, 16)
    levels = sorted({round(float(v) * 255) for v in torch.cat([data.y_train, data.y_val]).unique()})
    assert levels == [0, 60, 120]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as err:
        _sr(empty)
    assert "no HR images" in _one_line(err)
