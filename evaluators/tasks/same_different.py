"""Same or different, far apart: are two distant marks the same colour? A long-range image task
without a path to trace (2 classes, colour).

The procedure is that of the same-different problems of the Synthetic Visual Reasoning Test
(Fleuret et al., PNAS 2011, problem 1), which Kim, Ricci & Serre (Interface Focus 2018) used to
show that feed-forward convolutional networks learn same-different relations poorly when the two
items are far apart: two small marks on a cluttered background, class 1 when they are identical.
Our marks are square glyphs, a black frame around a fill of one of ``colours`` palette colours;
the two marks' centres lie at least ``min_distance`` pixels apart along the larger of the two
axes (the Chebyshev distance: what a square receptive field has to cover). Under them a smooth
random colour field crossed by ``clutter`` strokes; over everything, Gaussian pixel noise.

What makes it long range: each mark's colour is uniform over the palette in both classes, so one
mark alone says nothing, and a "different" pair's pooled features are the midpoint of two "same"
pairs' (red + green lies halfway between red + red and green + green): a linear classifier on
globally averaged tokens cannot tell them apart unless some token saw both marks. Two caveats,
both measured (docs/tasks.md): a norm *after* the pooling is a nonlinearity that can (the
pooled vector of a same pair is longer), so the identity mixer solves the task with a
post-pool LayerNorm head; and the marks must lie farther apart than a local stack reaches (four
3x3 blocks on an 8x8 token grid reach every pair of tokens; on a 16x16 grid, marks 24 of 32
pixels apart are out of their reach).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evaluators.data import DatasetError
from evaluators.tasks.base import Knob, Task, input_error, register
from evaluators.tasks.shapes import cluttered_images, encode
from search_space.spec import InputSpec

# well separated, and none of them black (the frame) or a mid grey
PALETTE = np.array(
    [
        [0.95, 0.1, 0.1],  # red
        [0.1, 0.8, 0.1],  # green
        [0.15, 0.25, 0.95],  # blue
        [0.95, 0.9, 0.1],  # yellow
        [0.1, 0.9, 0.9],  # cyan
        [0.9, 0.1, 0.9],  # magenta
        [1.0, 1.0, 1.0],  # white
        [1.0, 0.55, 0.0],  # orange
    ],
    dtype=np.float32,
)
MIN_SIDE, MAX_SIDE = 16, 128

KNOBS = {
    "colours": Knob(int, 2, len(PALETTE), "palette colours a mark's fill is drawn from"),
    "min_distance": Knob(
        float, 1.0, MAX_SIDE, "least Chebyshev distance of the marks' centres, pixels"
    ),
    "mark": Knob(int, 3, 16, "side of a mark in pixels, frame included (default 4 per 32)"),
    "contrast": Knob(float, 0.0, 0.4, "background colour field: 0.5 +- this in every channel"),
    "clutter": Knob(int, 0, 64, "strokes on the background"),
    "noise": Knob(float, 0.0, 1.0, "standard deviation of the pixel noise (intensities 0..1)"),
}
PRESETS: dict[str, dict[str, Any]] = {
    "easy": {"colours": 2, "contrast": 0.0, "clutter": 0, "noise": 0.02},
    "medium": {"colours": 4, "contrast": 0.4, "clutter": 4, "noise": 0.05},
    "hard": {"colours": 8, "contrast": 0.4, "clutter": 8, "noise": 0.08},
}


def settings(spec: InputSpec, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Checks that ``spec`` is a colour image the marks fit in; fills the defaults."""
    name = "same_different"
    if spec.kind != "image":
        raise input_error(name, "kind", spec.kind, "a colour image task; allowed: image")
    if spec.channels != 3:
        raise input_error(name, "channels", spec.channels, "a colour image task; allowed: 3")
    h, w = (int(v) for v in spec.resolution)
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise input_error(
            name, "resolution", f"{h}x{w}", f"allowed: image sides of {MIN_SIDE}..{MAX_SIDE} pixels"
        )
    side = min(h, w)
    mark = int(knobs.get("mark") or max(3, round(4 * side / 32)))
    distance = float(knobs.get("min_distance") or 0.6 * side)
    reach = max(h, w) - mark  # the farthest two centres can lie apart
    if mark > side // 2 or distance > reach:
        raise DatasetError(
            f"{name}: marks of {mark} px at least {distance:g} px apart do not fit a {h}x{w} "
            f"image; allowed: mark <= {side // 2} and min_distance <= {reach} for that mark"
        )
    return {
        "height": h,
        "width": w,
        "colours": int(knobs["colours"]),
        "min_distance": distance,
        "mark": mark,
        "contrast": float(knobs["contrast"]),
        "clutter": int(knobs["clutter"]),
        "noise": float(knobs["noise"]),
        "stroke": [side / 32.0, 2.0 * side / 32.0],
    }


def generate(labels: np.ndarray, rng: np.random.Generator, s: Mapping[str, Any]) -> np.ndarray:
    """``len(labels)`` images as uint8 ``N x 3 x H x W``; label 1 when the marks are the same."""
    h, w, mark = int(s["height"]), int(s["width"]), int(s["mark"])

    def draw(image: np.ndarray, part: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> None:
        first, second = _colours(part, rng, int(s["colours"]))
        corners = _corners(len(part), rng, h, w, mark, float(s["min_distance"]))
        for colour, (top, left) in zip((first, second), corners, strict=True):
            _mark(image, top, left, PALETTE[colour], mark)

    spread = float(s["contrast"])
    return cluttered_images(labels, rng, s, (0.5 - spread, 0.5 + spread), draw)


def _colours(
    labels: np.ndarray, rng: np.random.Generator, colours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Palette indices of both marks: equal for label 1, different (uniform) for label 0, so
    each mark alone is uniform over the palette in both classes."""
    first = rng.integers(0, colours, len(labels))
    shift = rng.integers(1, colours, len(labels))  # any other colour, uniformly
    second = np.where(labels == 1, first, (first + shift) % colours)
    return first, second


def _corners(
    m: int, rng: np.random.Generator, h: int, w: int, mark: int, distance: float
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Top-left corners of both marks, their centres at least ``distance`` apart (Chebyshev),
    drawn uniformly among such pairs by rejection (the settings guarantee that pairs exist)."""
    top_a, left_a = rng.integers(0, h - mark + 1, m), rng.integers(0, w - mark + 1, m)
    top_b, left_b = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    todo = np.arange(m)
    while len(todo):
        # redraw the first mark too: some first positions admit no partner (a centre square)
        ta, la = rng.integers(0, h - mark + 1, len(todo)), rng.integers(0, w - mark + 1, len(todo))
        tb, lb = rng.integers(0, h - mark + 1, len(todo)), rng.integers(0, w - mark + 1, len(todo))
        far = np.maximum(np.abs(ta - tb), np.abs(la - lb)) >= distance
        keep = todo[far]
        top_a[keep], left_a[keep], top_b[keep], left_b[keep] = ta[far], la[far], tb[far], lb[far]
        todo = todo[~far]
    return (top_a, left_a), (top_b, left_b)


def _mark(
    image: np.ndarray, top: np.ndarray, left: np.ndarray, colour: np.ndarray, mark: int
) -> None:
    """Draws one framed square per image: a black frame one pixel wide around the fill."""
    rows = np.arange(len(top))[:, None, None]
    dy, dx = np.mgrid[0:mark, 0:mark]
    ys, xs = top[:, None, None] + dy[None], left[:, None, None] + dx[None]
    frame = (dy == 0) | (dx == 0) | (dy == mark - 1) | (dx == mark - 1)
    fill = np.where(frame[None, :, :, None], 0.0, colour[:, None, None, :])  # m x k x k x 3
    for channel in range(3):
        image[rows, channel, ys, xs] = fill[..., channel]


TASK = register(
    Task(
        name="same_different",
        version=1,
        num_classes=2,
        knobs=KNOBS,
        presets=PRESETS,
        settings=settings,
        generate=generate,
        encode=encode,
        doc="long-range image task: are two distant framed marks the same colour? (2 classes)",
    )
)
