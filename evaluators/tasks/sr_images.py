"""Super-resolution images: recover a textured, cluttered image from its downsampled version.
The generated super-resolution task (``task: super_resolution``).

A high-resolution (HR) image is drawn as the segmentation task draws its images
(`evaluators.tasks.seg_shapes`, after ``textured_shapes``: a smooth colour field, ``clutter``
thin strokes, ``min_objects..max_objects`` turned shapes filled with stripes or checks), at
``scale`` times the spec's resolution; its low-resolution (LR) version is `downsample`: the mean
of each ``scale x scale`` block. Both are stored as bytes, as benchmark sets store their PNGs.
The model reads the LR image (the spec's input, intensities in [0, 1], not normalised) and
produces the HR one (``y``, in [0, 1]): PSNR is measured on that range.

The detail to recover: the stripes' and checks' edges (periods of 3-5 HR pixels per 32 of HR
side: 1.5-2.5 LR pixels at scale 2, below the LR sampling limit at scale 4), the shapes'
outlines and the strokes. ``noise`` (default 0) adds HR pixel noise no model can predict: it
caps the PSNR. ``scale`` must be the spec's head's (``sr_head``'s ``scale``); the
``super_resolution`` task kind passes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from evaluators.data import DatasetError
from evaluators.tasks.base import Knob, register
from evaluators.tasks.dense import DenseTask, no_labels
from evaluators.tasks.seg_shapes import MAX_OBJECTS, check_image, object_settings, paint_objects
from evaluators.tasks.shapes import SHAPES, TEXTURES, cluttered_images
from search_space.spec import InputSpec

NAME = "sr_images"
SCALES = (2, 3, 4)
MIN_LR, MAX_HR = 8, 256

KNOBS = {
    "scale": Knob(int, 2, 4, "upscaling factor: the HR side over the LR side (the head's)"),
    "clutter": Knob(int, 0, 64, "thin strokes on the background"),
    "noise": Knob(float, 0.0, 1.0, "standard deviation of HR pixel noise (unpredictable)"),
    "min_objects": Knob(int, 1, MAX_OBJECTS, "fewest objects per image"),
    "max_objects": Knob(int, 1, MAX_OBJECTS, "most objects per image"),
    "min_radius": Knob(float, 2.0, 128, "smallest radius in HR pixels (default 5 per 32)"),
    "max_radius": Knob(float, 2.0, 128, "largest radius in HR pixels (default 10 per 32)"),
}
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {"clutter": 2, "noise": 0.0, "min_objects": 1, "max_objects": 2},
    "medium": {"clutter": 6, "noise": 0.0, "min_objects": 1, "max_objects": 3},
    "hard": {"clutter": 12, "noise": 0.01, "min_objects": 2, "max_objects": 4},
}
# an HR image is scale^2 times an LR one: fewer examples than the classification tasks
DEFAULTS = {"n_train": 4000, "n_val": 500, "n_test": 500}


def settings(spec: InputSpec, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Checks the input (an LR image whose HR version fits) and fills the defaults."""
    scale = int(knobs.get("scale") or 2)
    check_image(NAME, spec, MIN_LR, MAX_HR // scale)
    h, w = (scale * int(v) for v in spec.resolution)
    return {"scale": scale, **object_settings(NAME, h, w, knobs, (5.0, 10.0))}


def downsample(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR version of uint8 ``N x C x H x W`` images whose sides are multiples of ``scale``:
    each ``scale x scale`` block's mean, rounded to a byte.

    An area (box) filter rather than the bicubic kernel of the DIV2K-style benchmarks: it is
    antialiased, never leaves [0, 255] (bicubic overshoots at edges and must be clipped), and is
    one exact formula, where bicubic resizers (MATLAB, PIL, OpenCV, torch) differ in the kernel's
    support and the boundary, so a user's images would not match the generated ones.
    """
    n, c, h, w = hr.shape
    if h % scale or w % scale:
        raise DatasetError(f"{NAME}: HR sides {h}x{w} are not multiples of scale {scale}")
    blocks = hr.reshape(n, c, h // scale, scale, w // scale, scale).astype(np.float32)
    return np.rint(blocks.mean(axis=(3, 5))).astype(np.uint8)


def generate_pairs(
    size: int, rng: np.random.Generator, s: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` LR images (uint8 ``N x 3 x h x w``) and their HR originals (``N x 3 x H x W``)."""
    counts = rng.integers(int(s["min_objects"]), int(s["max_objects"]) + 1, size)
    codes = rng.integers(0, len(SHAPES) * len(TEXTURES), (size, MAX_OBJECTS))
    codes = np.where(np.arange(MAX_OBJECTS)[None] < counts[:, None], codes, -1)

    def draw(image: np.ndarray, rows: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> None:
        paint_objects(image, codes[rows], yy, xx, rng, s)

    hr = cluttered_images(np.arange(size), rng, s, (0.1, 0.9), draw)
    return downsample(hr, int(s["scale"])), hr


def as_unit(raw: Mapping[str, np.ndarray], spec: InputSpec) -> dict[str, torch.Tensor]:
    """uint8 images as float tensors in [0, 1]; gray (the channels' mean) when the spec asks."""
    out = {}
    for split, arr in raw.items():
        x = torch.from_numpy(arr).float().mul_(1 / 255.0)
        out[split] = x.mean(dim=1, keepdim=True) if spec.channels == 1 else x
    return out


TASK = register(
    DenseTask(
        name=NAME,
        version=1,
        num_classes=0,
        knobs=KNOBS,
        presets=PRESETS,
        settings=settings,
        generate=no_labels,
        encode=as_unit,
        doc="super-resolution: textured, cluttered images from their area-downsampled versions",
        generate_pairs=generate_pairs,
        encode_targets=as_unit,
        defaults=DEFAULTS,
        target="image",
    )
)

__all__ = ["DEFAULTS", "NAME", "SCALES", "TASK", "downsample"]
