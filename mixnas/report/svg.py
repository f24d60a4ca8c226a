"""Small SVG charts for reports and benchmark figures (no plotting library is a dependency).

Every chart is a standalone ``<svg>`` string: axes with readable ticks, optional log scales, and
``<title>`` elements on points and lines, which browsers show on hover without any script.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def fmt(value: float) -> str:
    """A short label: 1.2M, 350K, 0.25, 96.4."""
    a = abs(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if a >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


@dataclass
class Axis:
    """A linear or log10 mapping from data to pixels."""

    lo: float
    hi: float
    start: float  # pixel of lo
    end: float  # pixel of hi
    log: bool = False

    def __post_init__(self) -> None:
        if self.log:
            self.lo, self.hi = math.log10(max(self.lo, 1e-300)), math.log10(max(self.hi, 1e-300))
        if self.hi == self.lo:
            self.lo, self.hi = self.lo - 0.5, self.hi + 0.5

    def __call__(self, value: float) -> float:
        v = math.log10(max(value, 1e-300)) if self.log else value
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            return [(10.0**e, fmt(10.0**e)) for e in range(math.ceil(self.lo), int(self.hi) + 1)]
        return [(t, fmt(t)) for t in nice_ticks(self.lo, self.hi)]


def _padded(values: Sequence[float], log: bool) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v) and (not log or v > 0)]
    if not finite:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if log:
        return lo / 1.15, hi * 1.15
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


class Canvas:
    """An SVG document with a plot area, axes, a title and a legend."""

    left, right, top, bottom = 64, 150, 30, 46

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height = width, height
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">'
            f"{escape(title)}</text>",
        ]

    @property
    def plot(self) -> tuple[float, float, float, float]:
        return self.left, self.width - self.right, self.top, self.height - self.bottom

    def axes(self, x: Axis, y: Axis, xlabel: str, ylabel: str) -> None:
        x0, x1, y0, y1 = self.plot
        p = self.parts
        p.append(f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="black"/>')
        p.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>')
        for value, label in x.ticks():
            px = x(value)
            p.append(f'<line x1="{px:.1f}" y1="{y1}" x2="{px:.1f}" y2="{y1 + 4}" stroke="black"/>')
            p.append(f'<text x="{px:.1f}" y="{y1 + 16}" text-anchor="middle">{label}</text>')
        for value, label in y.ticks():
            py = y(value)
            p.append(f'<line x1="{x0 - 4}" y1="{py:.1f}" x2="{x0}" y2="{py:.1f}" stroke="black"/>')
            p.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#eee"/>')
            p.append(f'<text x="{x0 - 6}" y="{py + 4:.1f}" text-anchor="end">{label}</text>')
        p.append(
            f'<text x="{(x0 + x1) / 2}" y="{self.height - 10}" text-anchor="middle">'
            f"{escape(xlabel)}</text>"
        )
        mid = (y0 + y1) / 2
        p.append(
            f'<text x="14" y="{mid}" text-anchor="middle" transform="rotate(-90 14 {mid})">'
            f"{escape(ylabel)}</text>"
        )

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        x = self.width - self.right + 12
        for i, (label, color) in enumerate(entries):
            y = self.top + 14 + 16 * i
            self.parts.append(
                f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{color}"/>'
                f'<text x="{x + 15}" y="{y + 1}">{escape(label)}</text>'
            )

    def svg(self) -> str:
        return "\n".join([*self.parts, "</svg>"])


@dataclass
class PointGroup:
    label: str
    color: str
    xs: Sequence[float]
    ys: Sequence[float]
    tips: Sequence[str] = ()
    radius: float = 3.5


def scatter_chart(
    groups: Sequence[PointGroup],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    staircase: tuple[Sequence[float], Sequence[float]] | None = None,
    log_x: bool = False,
    log_y: bool = False,
    width: int = 560,
    height: int = 380,
) -> str:
    """Points per group (later groups drawn on top), and optionally a front drawn as a line."""
    canvas = Canvas(width, height, title)
    x0, x1, y0, y1 = canvas.plot
    x = Axis(*_padded([v for g in groups for v in g.xs], log_x), x0, x1, log_x)
    y = Axis(*_padded([v for g in groups for v in g.ys], log_y), y1, y0, log_y)
    canvas.axes(x, y, xlabel, ylabel)
    if staircase is not None and len(staircase[0]) > 1:
        pts = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(*staircase, strict=True))
        canvas.parts.append(
            f'<polyline points="{pts}" fill="none" stroke="#d62728" stroke-dasharray="4 3"/>'
        )
    for g in groups:
        tips = list(g.tips) or [""] * len(g.xs)
        for a, b, tip in zip(g.xs, g.ys, tips, strict=True):
            if not (math.isfinite(a) and math.isfinite(b)):
                continue
            canvas.parts.append(
                f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="{g.radius}" fill="{g.color}" '
                f'fill-opacity="0.8"><title>{escape(tip)}</title></circle>'
            )
    canvas.legend([(g.label, g.color) for g in groups])
    return canvas.svg()


def line_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
    width: int = 640,
    height: int = 400,
) -> str:
    """One polyline per series, with axes, ticks and a legend."""
    canvas = Canvas(width, height, title)
    x0, x1, y0, y1 = canvas.plot
    x = Axis(*_padded([v for xs, _ in series.values() for v in xs], False), x0, x1)
    y = Axis(*_padded([v for _, ys in series.values() for v in ys], log_y), y1, y0, log_y)
    canvas.axes(x, y, xlabel, ylabel)
    entries = []
    for i, (label, (xs, ys)) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(
            f"{x(a):.1f},{y(b):.1f}"
            for a, b in zip(xs, ys, strict=True)
            if math.isfinite(b) and (not log_y or b > 0)
        )
        canvas.parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.6">'
            f"<title>{escape(label)}</title></polyline>"
        )
        entries.append((label, color))
    canvas.legend(entries)
    return canvas.svg()


def parallel_coordinates(
    axes: Sequence[str],
    rows: Sequence[Sequence[float]],
    colors: Sequence[str],
    *,
    title: str,
    tips: Sequence[str] = (),
    legend: Sequence[tuple[str, str]] = (),
    width: int = 760,
    height: int = 360,
) -> str:
    """One vertical axis per column (each scaled to its own range), one polyline per row."""
    canvas = Canvas(width, height, title)
    x0, x1, y0, y1 = canvas.plot
    n = len(axes)
    xs = [x0 + (x1 - x0) * i / max(n - 1, 1) for i in range(n)]
    scales = [Axis(*_padded([r[i] for r in rows], False), y1, y0) for i in range(n)]
    tips = list(tips) or [""] * len(rows)
    for row, color, tip in zip(rows, colors, tips, strict=True):
        pts = " ".join(
            f"{xs[i]:.1f},{scales[i](v):.1f}" for i, v in enumerate(row) if math.isfinite(v)
        )
        canvas.parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-opacity="0.7">'
            f"<title>{escape(tip)}</title></polyline>"
        )
    for i, name in enumerate(axes):
        canvas.parts.append(
            f'<line x1="{xs[i]:.1f}" y1="{y0}" x2="{xs[i]:.1f}" y2="{y1}" stroke="black"/>'
        )
        for value, label in scales[i].ticks():
            py = scales[i](value)
            canvas.parts.append(
                f'<text x="{xs[i] + 4:.1f}" y="{py + 4:.1f}" fill="#555">{label}</text>'
            )
        canvas.parts.append(
            f'<text x="{xs[i]:.1f}" y="{y1 + 16}" text-anchor="middle">{escape(name)}</text>'
        )
    canvas.legend(legend)
    return canvas.svg()
