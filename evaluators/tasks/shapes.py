"""Textured shapes: which shape, filled with which texture, lies on a cluttered colour background.
The local task of the suite (10 classes, colour).

Each image holds one object: a disk, square, triangle, plus-shaped cross or ring (5 shapes) of
radius ``min_radius..max_radius`` pixels, turned by a random angle, filled with stripes or
checks (2 textures) of a random period (3-5 pixels per 32 of side), orientation and phase, in two
random colours that differ by at least 0.3 in every channel. The class is ``2 * shape +
texture``. Under the object lies a smooth random colour field crossed by ``clutter`` strokes
(straight bars 1-2 pixels wide, random colours and ends); over everything, Gaussian pixel noise
of standard deviation ``noise`` (in units of the 0..1 intensity range).

What makes it local: the class is decided by a window of about ``2 * max_radius`` pixels around
the object (its outline and its fill); nothing needs relating two distant parts of the image,
and the object can sit anywhere. A stack of small convolutions sees it. What makes capacity
matter: colours, sizes, rotations, texture periods and the clutter vary freely, so a model needs
many filters (not a long reach) to tell stripes from checks and a square from a cross under all
of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from evaluators.data import DatasetError
from evaluators.tasks.base import Knob, Task, input_error, normalised_images, register
from search_space.spec import InputSpec

SHAPES = ("disk", "square", "triangle", "cross", "ring")
TEXTURES = ("stripes", "checks")
MIN_SIDE, MAX_SIDE = 16, 128
_CHUNK = 512
_COARSE = 4  # the background's colour field: a 4x4 grid of random colours, interpolated

KNOBS = {
    "clutter": Knob(int, 0, 64, "strokes on the background"),
    "noise": Knob(float, 0.0, 1.0, "standard deviation of the pixel noise (intensities 0..1)"),
    "min_radius": Knob(float, 2.0, 64, "smallest object radius in pixels (default 5 per 32)"),
    "max_radius": Knob(float, 2.0, 64, "largest object radius in pixels (default 8 per 32)"),
}
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {"clutter": 2, "noise": 0.03},
    "medium": {"clutter": 6, "noise": 0.06},
    "hard": {"clutter": 12, "noise": 0.1},
}


def settings(spec: InputSpec, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Checks that ``spec`` is a colour image of a size the task draws; fills the defaults."""
    if spec.kind != "image":
        raise input_error(
            "textured_shapes", "kind", spec.kind, "a colour image task; allowed: image"
        )
    if spec.channels != 3:
        raise input_error(
            "textured_shapes", "channels", spec.channels, "a colour image task; allowed: 3"
        )
    h, w = (int(v) for v in spec.resolution)
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise input_error(
            "textured_shapes",
            "resolution",
            f"{h}x{w}",
            f"allowed: image sides of {MIN_SIDE}..{MAX_SIDE} pixels",
        )
    scale = min(h, w) / 32.0
    low, high = radius_range("textured_shapes", h, w, knobs, (5.0, 8.0))
    return {
        "height": h,
        "width": w,
        "clutter": int(knobs["clutter"]),
        "noise": float(knobs["noise"]),
        "min_radius": low,
        "max_radius": high,
        "period": [3.0 * scale, 5.0 * scale],
        "stroke": [1.0 * scale, 2.0 * scale],
    }


def radius_range(
    task: str, h: int, w: int, knobs: Mapping[str, Any], radii: tuple[float, float]
) -> tuple[float, float]:
    """The objects' radius range for an ``h x w`` image: the ``min_radius``/``max_radius``
    knobs, else ``radii`` pixels per 32 of side (one knob given moves the other only as far as
    it must); a range that does not fit is a one-line `DatasetError` naming ``task``."""
    scale = min(h, w) / 32.0
    low = float(knobs.get("min_radius") or radii[0] * scale)
    high = float(knobs.get("max_radius") or radii[1] * scale)
    if knobs.get("min_radius") is not None and knobs.get("max_radius") is None:
        high = max(high, low)
    if knobs.get("max_radius") is not None and knobs.get("min_radius") is None:
        low = min(low, high)
    if low > high or 2 * high + 3 > min(h, w):
        raise DatasetError(
            f"{task}: radii {low:g}..{high:g} do not fit a {h}x{w} image; allowed: "
            f"min_radius <= max_radius <= {(min(h, w) - 3) / 2:g}"
        )
    return low, high


def generate(labels: np.ndarray, rng: np.random.Generator, s: Mapping[str, Any]) -> np.ndarray:
    """``len(labels)`` images as uint8 ``N x 3 x H x W``; label = 2 * shape + texture."""

    def draw(image: np.ndarray, part: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> None:
        _object(image, part, yy, xx, rng, s)

    return cluttered_images(labels, rng, s, (0.1, 0.9), draw)


def cluttered_images(
    labels: np.ndarray,
    rng: np.random.Generator,
    s: Mapping[str, Any],
    field: tuple[float, float],
    draw: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None],
) -> np.ndarray:
    """The colour images of the image tasks, as uint8 ``N x 3 x H x W``, in chunks: a smooth
    random colour field (a 4x4 grid of colours in ``field``, interpolated), ``s["clutter"]``
    strokes, then ``draw(image, labels_of_chunk, yy, xx)`` paints the task's objects into the
    float chunk, then Gaussian noise ``s["noise"]``. The random draws come in that order."""
    n = len(labels)
    h, w = int(s["height"]), int(s["width"])
    out = np.zeros((n, 3, h, w), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    up_rows, up_cols = _upsampler(h), _upsampler(w)
    for begin in range(0, n, _CHUNK):
        part = np.asarray(labels[begin : begin + _CHUNK])
        m = len(part)
        coarse = rng.uniform(*field, (m, 3, _COARSE, _COARSE)).astype(np.float32)
        image = np.einsum("yi,mcij,xj->mcyx", up_rows, coarse, up_cols)
        for _ in range(int(s["clutter"])):
            _stroke(image, yy, xx, rng, s)
        draw(image, part, yy, xx)
        if s["noise"]:
            image += float(s["noise"]) * rng.standard_normal(image.shape, dtype=np.float32)
        out[begin : begin + m] = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return out


def _upsampler(size: int) -> np.ndarray:
    """A ``size x _COARSE`` matrix of linear interpolation weights (rows sum to 1)."""
    pos = np.linspace(0, _COARSE - 1, size)
    lower = np.minimum(np.floor(pos).astype(int), _COARSE - 2)
    frac = pos - lower
    weights = np.zeros((size, _COARSE), dtype=np.float32)
    weights[np.arange(size), lower] = 1 - frac
    weights[np.arange(size), lower + 1] = frac
    return weights


def _stroke(
    image: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    rng: np.random.Generator,
    s: Mapping[str, Any],
) -> None:
    """Paints one straight bar of random ends, width and colour into every image."""
    m, _, h, w = (int(n) for n in image.shape)
    size = np.array([h - 1, w - 1], dtype=np.float32)
    p0 = (rng.random((m, 2)) * size).astype(np.float32)
    p1 = (rng.random((m, 2)) * size).astype(np.float32)
    thin, thick = (float(v) for v in s["stroke"])
    half = rng.uniform(thin, thick, m).astype(np.float32)[:, None, None] / 2
    colour = rng.random((m, 3)).astype(np.float32)
    d = p1 - p0
    length2 = np.maximum((d**2).sum(axis=1), 1e-6)[:, None, None]
    rel_y = yy[None] - p0[:, 0, None, None]
    rel_x = xx[None] - p0[:, 1, None, None]
    t = np.clip((rel_y * d[:, 0, None, None] + rel_x * d[:, 1, None, None]) / length2, 0, 1)
    dist2 = (rel_y - t * d[:, 0, None, None]) ** 2 + (rel_x - t * d[:, 1, None, None]) ** 2
    mask = dist2 <= half**2
    np.copyto(image, colour[:, :, None, None], where=mask[:, None])


def _object(
    image: np.ndarray,
    labels: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    rng: np.random.Generator,
    s: Mapping[str, Any],
) -> np.ndarray:
    """Paints each image's object: shape ``label // 2`` filled with texture ``label % 2``;
    returns where it lies (``m x H x W`` bool: the segmentation task's mask)."""
    m, _, h, w = (int(n) for n in image.shape)
    radius = rng.uniform(float(s["min_radius"]), float(s["max_radius"]), m).astype(np.float32)
    reach = radius + 1
    cy = reach + rng.random(m).astype(np.float32) * (h - 1 - 2 * reach)
    cx = reach + rng.random(m).astype(np.float32) * (w - 1 - 2 * reach)
    turn = rng.uniform(0, 2 * math.pi, m).astype(np.float32)
    dy, dx = yy[None] - cy[:, None, None], xx[None] - cx[:, None, None]
    cos, sin = np.cos(turn)[:, None, None], np.sin(turn)[:, None, None]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    r = radius[:, None, None]
    shape = labels // 2
    inside = np.zeros((m, h, w), dtype=bool)
    for index, name in enumerate(SHAPES):
        sel = shape == index
        if sel.any():
            inside[sel] = _shape_mask(name, u[sel], v[sel], r[sel])
    # the texture has its own orientation and phase, independent of the outline's
    short, long = (float(v) for v in s["period"])
    period = rng.uniform(short, long, m).astype(np.float32)[:, None, None]
    angle = rng.uniform(0, math.pi, m).astype(np.float32)
    phase = rng.uniform(0, 2 * math.pi, (2, m)).astype(np.float32)[:, :, None, None]
    ca, sa = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    along, across = dx * ca + dy * sa, -dx * sa + dy * ca
    wave = np.sin(2 * math.pi * along / period + phase[0])
    checks = wave * np.sin(2 * math.pi * across / period + phase[1])
    first = np.where((labels % 2 == 1)[:, None, None], checks, wave) > 0
    colour_a = rng.random((m, 3)).astype(np.float32)
    # the second colour differs by 0.3..0.7 in every channel (wrapped): the fill always shows
    colour_b = np.mod(colour_a + rng.uniform(0.3, 0.7, (m, 3)).astype(np.float32), 1.0)
    fill = np.where(first[:, None], colour_a[:, :, None, None], colour_b[:, :, None, None])
    np.copyto(image, fill, where=inside[:, None])
    return inside


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Whether each pixel (local coordinates ``u``, ``v``) lies inside shape ``name`` of radius
    ``r``; the sizes keep the areas within a factor ~1.5 of each other."""
    if name == "disk":
        return u**2 + v**2 <= r**2
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * r
    if name == "triangle":
        # equilateral, circumradius 1.25 r: inside the three edges at distance 0.625 r
        big = 1.25 * r
        inside = v <= big / 2
        for angle in (math.radians(210), math.radians(330)):
            inside &= u * math.cos(angle) + v * math.sin(angle) <= big / 2
        return inside
    if name == "cross":
        arm = 0.35 * r
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    if name == "ring":
        d2 = u**2 + v**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    raise ValueError(f"unknown shape {name!r}")


def encode(raw: Mapping[str, np.ndarray], spec: InputSpec) -> dict[str, torch.Tensor]:
    """Normalised float images (statistics of the training split)."""
    return normalised_images(raw)


TASK = register(
    Task(
        name="textured_shapes",
        version=1,
        num_classes=10,
        knobs=KNOBS,
        presets=PRESETS,
        settings=settings,
        generate=generate,
        encode=encode,
        doc="local image task: which of 5 shapes with which of 2 textures on clutter (10 classes)",
    )
)
