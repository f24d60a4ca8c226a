"""Pathfinder: are the two dots joined by one path of dashes? (Linsley et al. 2018; Long Range
Arena, Tay et al. 2020.) Written from the published description; no code taken from either.

Every image holds two *marked* paths of ``path_length`` dashes and ``distractors`` unmarked paths
of ``distractor_length`` dashes, drawn in white on black, plus two dots (filled circles). In a
positive image (label 1) the dots sit on the two ends of the first marked path; in a negative one
(label 0) one dot sits on an end of each marked path. Both classes thus show the same number of
paths of the same lengths, each dot on a path end: what tells them apart is whether one path
runs from dot to dot, which a model can only see by following the path across the image.

A path is a chain of dashes: each dash is ``dash`` pixels long, followed by a ``gap``; the
direction turns by a uniform angle in ``[-turn, turn]`` degrees between dashes. A path that
leaves the drawable area is reflected at its edge (the coordinates are folded, which keeps the
path continuous), so every path keeps its full length inside the image. Two rules, the same in
both classes, keep the picture unambiguous: the dots are at least ``min_dot_distance`` pixels
apart, and no dot lies on (within ``dot_radius + 1.5`` pixels of) the other marked path.
Images whose draw breaks a rule are drawn again (at most 200 rounds).

Lengths default to multiples of the image side / 32 (dash 3, gap 2, dot radius 1.5 and minimum
dot distance 6 at 32x32), so the task looks the same at every resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from evaluators.data import DatasetError
from evaluators.tasks.base import Knob, Task, input_error, normalised_images, register
from search_space.spec import InputSpec

MIN_SIDE, MAX_SIDE = 16, 256
_SAMPLE_STEP = 0.45  # pixels between points along a path: < 1, so rounded points stay 8-adjacent
_CHUNK = 2048  # images drawn at once: bounds the memory of the vectorised draw
_MAX_ROUNDS = 200

KNOBS = {
    "path_length": Knob(int, 1, 64, "dashes in each of the two marked paths"),
    "distractors": Knob(int, 0, 32, "unmarked paths"),
    "distractor_length": Knob(int, 1, 64, "dashes in each distractor (default: path_length)"),
    "dash": Knob(float, 0.5, 64, "dash length in pixels (default 3 per 32 pixels of side)"),
    "gap": Knob(float, 0, 64, "gap between dashes in pixels (default 2 per 32 pixels)"),
    "turn": Knob(float, 0, 180, "largest turn between two dashes, degrees"),
    "dot_radius": Knob(float, 0.5, 32, "radius of the dots in pixels (default 1.5 per 32)"),
    "min_dot_distance": Knob(float, 0, 512, "closest the two dots may be (default 6 per 32)"),
}
PRESETS: dict[str, dict[str, Any]] = {
    # path lengths follow the three Pathfinder difficulties (6, 9 and 14 dashes per path)
    "easy": {"path_length": 6, "distractors": 2, "turn": 30.0},
    "medium": {"path_length": 9, "distractors": 3, "turn": 30.0},
    "hard": {"path_length": 14, "distractors": 5, "turn": 30.0},
}


def settings(spec: InputSpec, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Checks that pathfinder can draw ``spec``'s input and fills in the scaled defaults."""
    if spec.kind == "image":
        if spec.channels not in (1, 3):
            raise input_error(
                "pathfinder",
                "channels",
                spec.channels,
                "a grayscale task; allowed: 1, or 3 (the gray image repeated)",
            )
        h, w = (int(v) for v in spec.resolution)
        if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
            raise input_error(
                "pathfinder",
                "resolution",
                f"{h}x{w}",
                f"allowed: image sides of {MIN_SIDE}..{MAX_SIDE} pixels",
            )
    else:
        side = math.isqrt(max(spec.seq_len, 0))
        if spec.vocab_size == 1 or (not spec.vocab_size and spec.feature_dim != 1):
            raise input_error(
                "pathfinder",
                "vocab_size" if spec.vocab_size else "feature_dim",
                spec.vocab_size or spec.feature_dim,
                "a flattened image is pixel ids (vocab_size >= 2) or one feature per pixel "
                "(feature_dim 1)",
            )
        if side * side != spec.seq_len or not MIN_SIDE <= side <= MAX_SIDE:
            raise input_error(
                "pathfinder",
                "seq_len",
                spec.seq_len,
                f"a flattened square image; allowed: a side in {MIN_SIDE}..{MAX_SIDE}, squared "
                f"({MIN_SIDE**2}..{MAX_SIDE**2}; 1024 = 32x32)",
            )
        h = w = side
    scale = min(h, w) / 32.0

    def scaled(key: str, per_32: float) -> float:
        value = knobs.get(key)
        return float(per_32 * scale if value is None else value)

    out = {
        "height": h,
        "width": w,
        "path_length": int(knobs["path_length"]),
        "distractors": int(knobs["distractors"]),
        "distractor_length": int(knobs.get("distractor_length") or knobs["path_length"]),
        "dash": scaled("dash", 3.0),
        "gap": scaled("gap", 2.0),
        "turn": float(knobs["turn"]),
        "dot_radius": scaled("dot_radius", 1.5),
        "min_dot_distance": scaled("min_dot_distance", 6.0),
    }
    if 2 * out["dot_radius"] + 4 > min(h, w) or out["min_dot_distance"] > 0.8 * min(h, w):
        raise DatasetError(
            f"pathfinder: dot_radius {out['dot_radius']:g} and min_dot_distance "
            f"{out['min_dot_distance']:g} do not fit a {h}x{w} image; allowed: dot_radius "
            f"<= {(min(h, w) - 4) / 2:g}, min_dot_distance <= {0.8 * min(h, w):g}"
        )
    return out


def generate(labels: np.ndarray, rng: np.random.Generator, s: Mapping[str, Any]) -> np.ndarray:
    """``len(labels)`` images as uint8 ``N x H x W`` (0 background, 255 dashes and dots)."""
    return draw(labels, rng, s)[0]


def draw(
    labels: np.ndarray, rng: np.random.Generator, s: Mapping[str, Any], *, traces: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The images and, with ``traces``, what tests need to check them: ``dots`` (N x 2 x 2,
    the rounded (row, col) of dot A and dot B) and ``trace_a``/``trace_b`` (N x H x W booleans:
    the gapless centre line of the marked path dot A / dot B lies on)."""
    n = len(labels)
    h, w = int(s["height"]), int(s["width"])
    images = np.zeros((n, h, w), dtype=np.uint8)
    extra: dict[str, np.ndarray] = {}
    if traces:
        extra = {
            "dots": np.zeros((n, 2, 2), dtype=np.int64),
            "trace_a": np.zeros((n, h, w), dtype=bool),
            "trace_b": np.zeros((n, h, w), dtype=bool),
        }
    for begin in range(0, n, _CHUNK):
        part = slice(begin, min(n, begin + _CHUNK))
        _draw_chunk(np.asarray(labels[part]), rng, s, images[part], extra, part)
    return images, extra


def _draw_chunk(
    labels: np.ndarray,
    rng: np.random.Generator,
    s: Mapping[str, Any],
    out: np.ndarray,
    extra: dict[str, np.ndarray],
    part: slice,
) -> None:
    m = len(labels)
    marked = _marked(labels == 1, rng, s)
    dash_points = [marked["dashes"].reshape(m, -1, 2)]
    if s["distractors"]:
        distractors = _paths(m, int(s["distractors"]), int(s["distractor_length"]), rng, s)
        dash_points.append(distractors["dashes"].reshape(m, -1, 2))
    points = np.rint(np.concatenate(dash_points, axis=1)).astype(np.int64)
    h, w = out.shape[1:]
    rows = np.repeat(np.arange(m), points.shape[1])
    out[rows, points[..., 0].ravel(), points[..., 1].ravel()] = 255
    dots = np.rint(marked["dots"]).astype(np.int64)  # (m, 2, 2)
    _stamp_dots(out, marked["dots"], float(s["dot_radius"]))
    if extra:
        extra["dots"][part] = dots
        trace = np.rint(marked["traces"]).astype(np.int64)  # (m, 2 paths, T, 2)
        pick = np.arange(m)
        for key, path in (("trace_a", marked["path_a"]), ("trace_b", marked["path_b"])):
            pts = trace[pick, path]  # (m, T, 2)
            mask = np.zeros((m, h, w), dtype=bool)
            mask[np.repeat(pick, pts.shape[1]), pts[..., 0].ravel(), pts[..., 1].ravel()] = True
            extra[key][part] = mask


def _marked(positive: np.ndarray, rng: np.random.Generator, s: Mapping[str, Any]) -> dict:
    """The two marked paths and the dots of every image, redrawn where a rule is broken."""
    m = len(positive)
    result: dict[str, np.ndarray] = {}
    todo = np.arange(m)
    for _ in range(_MAX_ROUNDS):
        k = len(todo)
        paths = _paths(k, 2, int(s["path_length"]), rng, s)
        ends = paths["ends"]  # (k, 2 paths, 2 ends, 2)
        end_a = rng.integers(0, 2, k)
        end_b = rng.integers(0, 2, k)
        pos = positive[todo]
        pick = np.arange(k)
        # positive: both ends of path 0; negative: an end of path 0 and an end of path 1
        path_b = np.where(pos, 0, 1)
        end_b = np.where(pos, 1 - end_a, end_b)
        dot_a = ends[pick, 0, end_a]
        dot_b = ends[pick, path_b, end_b]
        # rules: dots apart, and each dot clear of the other marked path (path 1 for dot A;
        # path 1 or 0 for dot B), the same in both classes
        clear = float(s["dot_radius"]) + 1.5
        far_a = _distance_to(dot_a, paths["traces"][:, 1]) > clear
        far_b = _distance_to(dot_b, paths["traces"][pick, 1 - path_b]) > clear
        apart = np.linalg.norm(dot_a - dot_b, axis=1) >= float(s["min_dot_distance"])
        good = far_a & far_b & apart
        chosen = {
            "dashes": paths["dashes"],
            "traces": paths["traces"],
            "dots": np.stack([dot_a, dot_b], axis=1),
            "path_a": np.zeros(k, dtype=np.int64),
            "path_b": path_b,
        }
        for key, value in chosen.items():
            if key not in result:
                result[key] = np.zeros((m, *value.shape[1:]), dtype=value.dtype)
            result[key][todo[good]] = value[good]
        todo = todo[~good]
        if not len(todo):
            return result
    raise DatasetError(
        f"pathfinder: {len(todo)} of {m} images broke the drawing rules after {_MAX_ROUNDS} "
        f"redraws (min_dot_distance {s['min_dot_distance']:g}, dot_radius {s['dot_radius']:g} "
        f"in a {s['height']}x{s['width']} image); lower min_dot_distance or dot_radius"
    )


def _paths(m: int, p: int, segments: int, rng: np.random.Generator, s: Mapping[str, Any]) -> dict:
    """``p`` random paths in each of ``m`` images: ``dashes`` (m, p, points, 2) along the dashes,
    ``traces`` (m, p, points, 2) along the gapless centre line, ``ends`` (m, p, 2, 2); (row, col)
    coordinates already folded into the drawable area."""
    h, w = int(s["height"]), int(s["width"])
    dash, gap = float(s["dash"]), float(s["gap"])
    margin = float(math.ceil(float(s["dot_radius"])))
    low = np.array([margin, margin])
    high = np.array([h - 1 - margin, w - 1 - margin])
    start = low + rng.random((m, p, 2)) * (high - low)
    turn = math.radians(float(s["turn"]))
    turns = rng.uniform(-turn, turn, (m, p, segments))
    turns[..., 0] = rng.uniform(0, 2 * math.pi, (m, p))  # the first "turn" is the heading
    angles = np.cumsum(turns, axis=-1)
    dirs = np.stack([np.sin(angles), np.cos(angles)], axis=-1)  # (m, p, S, 2)
    step = dash + gap
    seg_start = start[:, :, None] + step * (np.cumsum(dirs, axis=2) - dirs)
    along_dash = np.linspace(0.0, dash, math.ceil(dash / _SAMPLE_STEP) + 1)
    dashes = seg_start[..., None, :] + along_dash[:, None] * dirs[..., None, :]
    # the centre line covers dash and gap, except after the last dash (where the path ends)
    k = math.ceil(step / _SAMPLE_STEP) + 1
    along = np.tile(np.linspace(0.0, step, k), (segments, 1))
    along[-1] = np.minimum(along[-1], dash)
    traces = seg_start[..., None, :] + along[..., None] * dirs[..., None, :]
    ends = np.stack([start, seg_start[:, :, -1] + dash * dirs[:, :, -1]], axis=2)

    def fold(points: np.ndarray) -> np.ndarray:
        return _fold(points.reshape(*points.shape[:2], -1, 2), low, high)

    return {"dashes": fold(dashes), "traces": fold(traces), "ends": fold(ends)}


def _fold(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Reflects coordinates into [low, high] (a triangle wave: continuous, 1-Lipschitz)."""
    span = high - low
    offset = np.mod(points - low, 2 * span)
    return low + span - np.abs(span - offset)


def _distance_to(dots: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from each dot (k, 2) to the nearest of its image's points (k, T, 2)."""
    return np.sqrt(((points - dots[:, None]) ** 2).sum(axis=-1).min(axis=1))


def _stamp_dots(out: np.ndarray, dots: np.ndarray, radius: float) -> None:
    """Filled circles of ``radius`` around each dot's exact centre, clipped to the image."""
    m, h, w = out.shape
    reach = math.ceil(radius) + 1
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    base = np.floor(dots).astype(np.int64)  # (m, 2, 2)
    rows = base[..., 0, None, None] + dy  # (m, 2, K, K)
    cols = base[..., 1, None, None] + dx
    inside = (rows - dots[..., 0, None, None]) ** 2 + (cols - dots[..., 1, None, None]) ** 2
    keep = (inside <= radius**2) & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    image = np.broadcast_to(np.arange(m)[:, None, None, None], rows.shape)
    out[image[keep], rows[keep], cols[keep]] = 255


def encode(raw: Mapping[str, np.ndarray], spec: InputSpec) -> dict[str, torch.Tensor]:
    """Images (gray, or repeated to 3 channels) or, for token inputs, flattened pixels: ids
    0/1 with a vocabulary, one normalised feature per pixel without."""
    if spec.kind == "tokens" and spec.vocab_size:
        return {
            k: torch.from_numpy((v > 0).reshape(len(v), -1).astype(np.int64))
            for k, v in raw.items()
        }
    images = normalised_images({k: v[:, None] for k, v in raw.items()})
    if spec.kind == "tokens":
        return {k: v.reshape(len(v), -1, 1).contiguous() for k, v in images.items()}
    if spec.channels == 3:
        images = {k: v.repeat(1, 3, 1, 1) for k, v in images.items()}
    return images


TASK = register(
    Task(
        name="pathfinder",
        version=1,
        num_classes=2,
        knobs=KNOBS,
        presets=PRESETS,
        settings=settings,
        generate=generate,
        encode=encode,
        doc="long-range image task: are two dots joined by one dashed path? (2 classes)",
    )
)
