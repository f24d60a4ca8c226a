"""Segmentation shapes: which pixels belong to which kind of shape, on a cluttered background.
The generated segmentation task (``task: segmentation``), with as many classes as the spec asks.

Each image holds ``min_objects..max_objects`` objects drawn as in ``textured_shapes``
(`evaluators.tasks.shapes`: a disk, square, triangle, cross or ring, turned, filled with stripes
or checks in two random colours) on the same background (a smooth random colour field crossed by
``clutter`` strokes, Gaussian pixel noise ``noise`` over everything). Later objects cover earlier
ones. The mask holds, per pixel, 0 for the background or the class of the object on top.

Classes: the spec's ``num_classes`` K counts the background, so there are K - 1 foreground
classes, K in 2..11. Up to 5 foreground classes are the shapes (the texture is random, a
nuisance); from 6 on, a class is a (shape, texture) pair (classes 1-5 striped, 6-10 checked), so
the texture must be told apart too. The first object of each image has a class drawn balanced
over the images (every foreground class leads the same number of images); the others are
uniform. Knobs ``min_radius``/``max_radius`` default to 4 and 7 pixels per 32 of side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from evaluators.data import DatasetError
from evaluators.tasks.base import Knob, input_error, normalised_images, register
from evaluators.tasks.dense import DenseTask, balanced_over_images, no_labels
from evaluators.tasks.shapes import (
    MAX_SIDE,
    MIN_SIDE,
    SHAPES,
    TEXTURES,
    _object,
    cluttered_images,
    radius_range,
)
from search_space.spec import InputSpec

NAME = "seg_shapes"
MAX_OBJECTS = 4
MAX_CLASSES = 1 + len(SHAPES) * len(TEXTURES)  # the background and every (shape, texture)

KNOBS = {
    "clutter": Knob(int, 0, 64, "strokes on the background"),
    "noise": Knob(float, 0.0, 1.0, "standard deviation of the pixel noise (intensities 0..1)"),
    "min_objects": Knob(int, 1, MAX_OBJECTS, "fewest objects per image"),
    "max_objects": Knob(int, 1, MAX_OBJECTS, "most objects per image"),
    "min_radius": Knob(float, 2.0, 64, "smallest object radius in pixels (default 4 per 32)"),
    "max_radius": Knob(float, 2.0, 64, "largest object radius in pixels (default 7 per 32)"),
}
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {"clutter": 2, "noise": 0.03, "min_objects": 1, "max_objects": 2},
    "medium": {"clutter": 6, "noise": 0.06, "min_objects": 1, "max_objects": 3},
    "hard": {"clutter": 12, "noise": 0.1, "min_objects": 2, "max_objects": 4},
}


def object_settings(
    task: str, h: int, w: int, knobs: Mapping[str, Any], radii: tuple[float, float]
) -> dict[str, Any]:
    """The drawing settings `shapes.cluttered_images` and `shapes._object` read, for an image of
    ``h x w``: radii (default ``radii`` pixels per 32 of side), texture periods, stroke widths;
    a radius that does not fit or fewer objects than the least is a one-line `DatasetError`."""
    scale = min(h, w) / 32.0
    low, high = radius_range(task, h, w, knobs, radii)
    fewest = int(knobs.get("min_objects") or 1)
    most = int(knobs.get("max_objects") or max(fewest, 2))
    if fewest > most:
        raise DatasetError(
            f"{task}: min_objects {fewest} > max_objects {most}; allowed: min_objects <= "
            "max_objects"
        )
    return {
        "height": h,
        "width": w,
        "clutter": int(knobs.get("clutter") or 0),
        "noise": float(knobs.get("noise") or 0.0),
        "min_objects": fewest,
        "max_objects": most,
        "min_radius": low,
        "max_radius": high,
        "period": [3.0 * scale, 5.0 * scale],
        "stroke": [1.0 * scale, 2.0 * scale],
    }


def check_image(task: str, spec: InputSpec, low: int = MIN_SIDE, high: int = MAX_SIDE) -> None:
    """A one-line `DatasetError` unless ``spec`` is a 1- or 3-channel image of sides
    ``low..high``."""
    if spec.kind != "image":
        raise input_error(task, "kind", spec.kind, "an image task; allowed: image")
    if spec.channels not in (1, 3):
        raise input_error(task, "channels", spec.channels, "allowed: 1 (gray) or 3 (colour)")
    h, w = (int(v) for v in spec.resolution)
    if not (low <= h <= high and low <= w <= high):
        raise input_error(
            task, "resolution", f"{h}x{w}", f"allowed: image sides of {low}..{high} pixels"
        )


def settings(spec: InputSpec, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Checks the input (an image, 2..11 classes) and fills the defaults."""
    check_image(NAME, spec)
    if not 2 <= spec.num_classes <= MAX_CLASSES:
        raise input_error(
            NAME,
            "num_classes",
            spec.num_classes,
            f"the background and 1..{MAX_CLASSES - 1} kinds of shape; allowed: 2..{MAX_CLASSES}",
        )
    h, w = (int(v) for v in spec.resolution)
    # the channel count is left out: gray images are the colour ones averaged (`encode`)
    return {"classes": int(spec.num_classes), **object_settings(NAME, h, w, knobs, (4.0, 7.0))}


def paint_objects(
    image: np.ndarray,
    codes: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    rng: np.random.Generator,
    s: Mapping[str, Any],
) -> np.ndarray:
    """Paints object ``j`` of image ``i`` where ``codes[i, j] >= 0`` (code = 2 * shape +
    texture, as `shapes._object` reads it), in order; returns, per pixel, the index of the
    object on top, or -1."""
    m, _, h, w = (int(n) for n in image.shape)
    top = np.full((m, h, w), -1, dtype=np.int8)
    for j in range(codes.shape[1]):
        sel = np.flatnonzero(codes[:, j] >= 0)
        if not sel.size:
            continue
        part = image[sel]
        inside = _object(part, codes[sel, j], yy, xx, rng, s)
        image[sel] = part
        top[sel] = np.where(inside, j, top[sel])
    return top


def generate_pairs(
    size: int, rng: np.random.Generator, s: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` images (uint8 ``N x 3 x H x W``) and their masks (uint8 ``N x H x W``)."""
    foreground = int(s["classes"]) - 1
    classes = np.empty((size, MAX_OBJECTS), dtype=np.int64)
    classes[:, 0] = balanced_over_images(size, foreground, rng) + 1
    classes[:, 1:] = rng.integers(1, foreground + 1, (size, MAX_OBJECTS - 1))
    counts = rng.integers(int(s["min_objects"]), int(s["max_objects"]) + 1, size)
    present = np.arange(MAX_OBJECTS)[None] < counts[:, None]
    index = classes - 1
    if foreground <= len(SHAPES):  # the class is the shape; a random texture
        texture = rng.integers(0, len(TEXTURES), classes.shape)
        codes = 2 * index + texture
    else:  # the class is a (shape, texture) pair
        codes = 2 * (index % len(SHAPES)) + index // len(SHAPES)
    codes = np.where(present, codes, -1)
    masks = np.zeros((size, int(s["height"]), int(s["width"])), dtype=np.uint8)

    def draw(image: np.ndarray, rows: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> None:
        top = paint_objects(image, codes[rows], yy, xx, rng, s)
        label = np.take_along_axis(classes[rows], np.maximum(top, 0).reshape(len(rows), -1), 1)
        masks[rows] = np.where(top >= 0, label.reshape(top.shape), 0)

    # the "labels" handed through are the rows, so that `draw` finds each image's objects
    images = cluttered_images(np.arange(size), rng, s, (0.1, 0.9), draw)
    return images, masks


def encode(raw: Mapping[str, np.ndarray], spec: InputSpec) -> dict[str, torch.Tensor]:
    """Normalised float images (statistics of the training split); gray when the spec asks."""
    if spec.channels == 1:
        raw = {k: np.rint(v.mean(axis=1, keepdims=True)).astype(np.uint8) for k, v in raw.items()}
    return normalised_images(raw)


def encode_targets(raw: Mapping[str, np.ndarray], spec: InputSpec) -> dict[str, torch.Tensor]:
    """The masks as int64 ``N x H x W`` class indices."""
    return {split: torch.from_numpy(arr.astype(np.int64)) for split, arr in raw.items()}


TASK = register(
    DenseTask(
        name=NAME,
        version=1,
        num_classes=0,
        knobs=KNOBS,
        presets=PRESETS,
        settings=settings,
        generate=no_labels,
        encode=encode,
        doc="segmentation: 1-4 textured shapes on clutter, a class per pixel (2..11 classes)",
        generate_pairs=generate_pairs,
        encode_targets=encode_targets,
    )
)
