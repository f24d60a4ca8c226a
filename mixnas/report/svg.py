"""Small SVG charts for reports and benchmark figures (no plotting library is a dependency).

Every chart is a standalone ``<svg>`` string: axes with readable ticks, optional log scales, and
``<title>`` elements on points and lines, which browsers show on hover without any script. Each
``<svg>`` has a ``viewBox`` and the class ``chart``, so a page can scale it to its container
(``svg.chart { width: 100%; height: auto }``, as the report does) while a standalone file keeps its
``width`` and ``height``. Points carry a class naming their group (``pt front``, ``pt infeasible``,
...) and legend keys the class ``key``, so a reader of the DOM can count what is drawn.
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
    """A short label: 1.2M, 350K, 0.25, 96.4 (and 3.2e+14 past the G range)."""
    a = abs(value)
    if a >= 1e12:
        return f"{value:.2g}"
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
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" '
            f'class="chart" role="img" aria-label="{escape(title)}">',
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

    def legend(
        self, entries: Sequence[tuple[str, str] | PointGroup], x: float | None = None
    ) -> None:
        """Colour swatches (label, colour) or, for point groups, their marker shapes; from ``x``
        (default: just right of the plot area)."""
        x = self.width - self.right + 12 if x is None else x
        for i, entry in enumerate(entries):
            y = self.top + 14 + 16 * i
            if isinstance(entry, PointGroup):
                label = entry.label
                key = marker(entry, x + 5, y - 3, min(entry.radius, 4.5), "key")
            else:
                label, color = entry
                key = f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{color}"/>'
            self.parts.append(f'{key}<text x="{x + 15}" y="{y + 1}">{escape(label)}</text>')

    def svg(self) -> str:
        return "\n".join([*self.parts, "</svg>"])


@dataclass
class PointGroup:
    """Points drawn alike. ``shape``: circle, square, triangle, diamond or cross; ``hollow``:
    outline only; ``stroke``: an outline colour for filled shapes; ``kind``: the class the points
    carry (``pt <kind>``)."""

    label: str
    color: str
    xs: Sequence[float]
    ys: Sequence[float]
    tips: Sequence[str] = ()
    radius: float = 3.5
    shape: str = "circle"
    hollow: bool = False
    stroke: str | None = None
    kind: str = "point"


def marker(group: PointGroup, cx: float, cy: float, r: float, cls: str, tip: str = "") -> str:
    """One marker of ``group``'s shape at (cx, cy); ``tip`` becomes its hover title."""
    if group.hollow or group.shape == "cross":
        paint = f'fill="none" stroke="{group.color}" stroke-width="1.5"'
    else:
        edge = f' stroke="{group.stroke}" stroke-width="1"' if group.stroke else ""
        paint = f'fill="{group.color}" fill-opacity="0.8"{edge}'
    title = f"<title>{escape(tip)}</title>" if tip else ""
    if group.shape == "circle":
        return f'<circle class="{cls}" cx="{cx:.1f}" cy="{cy:.1f}" r="{r}" {paint}>{title}</circle>'
    if group.shape == "square":
        d = f"M{cx - r:.1f},{cy - r:.1f}h{2 * r:.1f}v{2 * r:.1f}h{-2 * r:.1f}z"
    elif group.shape == "triangle":
        d = f"M{cx:.1f},{cy - r * 1.2:.1f}L{cx + r * 1.1:.1f},{cy + r * 0.8:.1f}"
        d += f"L{cx - r * 1.1:.1f},{cy + r * 0.8:.1f}z"
    elif group.shape == "diamond":
        d = f"M{cx:.1f},{cy - r * 1.3:.1f}L{cx + r:.1f},{cy:.1f}L{cx:.1f},{cy + r * 1.3:.1f}"
        d += f"L{cx - r:.1f},{cy:.1f}z"
    else:  # cross
        d = f"M{cx - r:.1f},{cy - r:.1f}L{cx + r:.1f},{cy + r:.1f}"
        d += f"M{cx - r:.1f},{cy + r:.1f}L{cx + r:.1f},{cy - r:.1f}"
    return f'<path class="{cls}" d="{d}" {paint}>{title}</path>'


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
            canvas.parts.append(marker(g, x(a), y(b), g.radius, f"pt {g.kind}", tip))
    canvas.legend([g for g in groups if g.xs or g.kind == "front"])
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
    categories: Mapping[int, Sequence[str]] | None = None,
    width: int = 760,
    height: int = 360,
) -> str:
    """One vertical axis per column (each scaled to its own range), one polyline per row.

    ``categories`` maps a column to its category names: that column holds category indices, its
    axis is labelled with the names, evenly spaced, and each line passes its category within a
    narrow band (spread by row, the same in every rendering) so that the share of lines through
    each category stays visible."""
    categories = dict(categories or {})
    canvas = Canvas(width, height, title)
    canvas.right = 250 if legend else 110  # the last axis's labels, then the legend
    x0, x1, y0, y1 = canvas.plot
    n = len(axes)
    xs = [x0 + (x1 - x0) * i / max(n - 1, 1) for i in range(n)]
    scales = []
    for i in range(n):
        if i in categories:
            scales.append(Axis(-0.5, len(categories[i]) - 0.5, y1, y0))
        else:
            scales.append(Axis(*_padded([r[i] for r in rows], False), y1, y0))
    tips = list(tips) or [""] * len(rows)
    for k, (row, color, tip) in enumerate(zip(rows, colors, tips, strict=True)):
        spread = ((k * 0.6180339887) % 1.0 - 0.5) * 0.5  # within +-0.25 of a category
        pts = " ".join(
            f"{xs[i]:.1f},{scales[i](v + (spread if i in categories else 0.0)):.1f}"
            for i, v in enumerate(row)
            if math.isfinite(v)
        )
        canvas.parts.append(
            f'<polyline class="line" points="{pts}" fill="none" stroke="{color}" '
            f'stroke-opacity="0.6"><title>{escape(tip)}</title></polyline>'
        )
    for i, name in enumerate(axes):
        canvas.parts.append(
            f'<line x1="{xs[i]:.1f}" y1="{y0}" x2="{xs[i]:.1f}" y2="{y1}" stroke="black"/>'
        )
        if i in categories:
            ticks = [(float(j), c) for j, c in enumerate(categories[i])]
        else:
            ticks = scales[i].ticks()
        for value, label in ticks:
            py = scales[i](value)
            short = label if len(label) <= 14 else label[:13] + "\u2026"
            canvas.parts.append(
                f'<text x="{xs[i] + 4:.1f}" y="{py + 4:.1f}" fill="#333" stroke="white" '
                f'stroke-width="3" paint-order="stroke"><title>{escape(label)}</title>'
                f"{escape(short)}</text>"
            )
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        canvas.parts.append(
            f'<text x="{xs[i]:.1f}" y="{y1 + 16}" text-anchor="{anchor}" font-weight="bold">'
            f"{escape(name)}</text>"
        )
    canvas.legend(legend, x=x1 + 110)
    return canvas.svg()


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    xlabel: str,
    color: str = PALETTE[0],
    width: int = 560,
    bar_height: int = 18,
) -> str:
    """Horizontal bars, one per (label, value), in the order given, values written beside them."""
    label_width = 8 + 6.5 * max((len(label) for label, _ in bars), default=4)
    height = 30 + 46 + bar_height * max(len(bars), 1)
    canvas = Canvas(width, height, title)
    canvas.left, canvas.right = int(min(label_width, width / 3)), 60
    x0, x1, y0, y1 = canvas.plot
    top = max((v for _, v in bars if math.isfinite(v)), default=1.0) or 1.0
    axis = Axis(0.0, top, x0, x1)
    p = canvas.parts
    p.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>')
    for value, label in axis.ticks():
        px = axis(value)
        p.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}" stroke="#eee"/>')
        p.append(f'<text x="{px:.1f}" y="{y1 + 16}" text-anchor="middle">{label}</text>')
    for k, (label, value) in enumerate(bars):
        y = y0 + k * bar_height
        length = max(axis(value) - x0, 0.0) if math.isfinite(value) else 0.0
        p.append(
            f'<rect class="bar" x="{x0}" y="{y + 3}" width="{length:.1f}" '
            f'height="{bar_height - 6}" fill="{color}"><title>{escape(label)}: {value:.3f}'
            f"</title></rect>"
            f'<text x="{x0 - 6}" y="{y + bar_height / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<text x="{x0 + length + 4:.1f}" y="{y + bar_height / 2 + 4:.1f}">{value:.2f}</text>'
        )
    p.append(
        f'<text x="{(x0 + x1) / 2}" y="{height - 10}" text-anchor="middle">{escape(xlabel)}</text>'
    )
    return canvas.svg()


def scatter3d_chart(
    groups: Sequence[PointGroup],
    zs: Sequence[Sequence[float]],
    *,
    title: str,
    labels: Sequence[str],
    ends: Sequence[tuple[str, str]],
    drop: Sequence[str] = ("front",),
    width: int = 620,
    height: int = 460,
) -> str:
    """Points in a unit cube drawn in an oblique projection: each group's ``xs``, ``ys`` and the
    matching ``zs`` lie in [0, 1] with 0 the best end of every axis (the corner nearest the
    viewer, bottom left). ``labels`` name the three axes, ``ends`` give each axis's values at 0
    and at 1 (written beside its name); points of the kinds in ``drop`` get a line down to the
    floor (their position in the first two objectives) so their height can be read."""
    canvas = Canvas(width, height, title)
    canvas.right = 150
    x0, x1, y0, y1 = canvas.plot
    key_height = 3 * 15 + 8  # the lines naming the axes, above the cube
    ox, oy = x0 + 30, y1 - 6  # the best corner
    size = min((x1 - ox) / 1.42, (y1 - y0 - key_height) / 1.4)
    ax, ay, az = (0.97 * size, -0.12 * size), (0.45 * size, -0.38 * size), 0.9 * size

    def at(a: float, b: float, c: float) -> tuple[float, float]:
        return ox + a * ax[0] + b * ay[0], oy + a * ax[1] + b * ay[1] - c * az

    p = canvas.parts
    floor = [at(0, 0, 0), at(1, 0, 0), at(1, 1, 0), at(0, 1, 0)]
    p.append(
        '<polygon points="'
        + " ".join(f"{u:.1f},{v:.1f}" for u, v in floor)
        + '" fill="#f6f7f9" stroke="#ccc"/>'
    )
    for ea, eb in ((1, 1), (0, 1), (1, 0)):  # the vertical edges behind and beside the points
        (u0, v0), (u1, v1) = at(ea, eb, 0), at(ea, eb, 1)
        p.append(f'<line x1="{u0:.1f}" y1="{v0:.1f}" x2="{u1:.1f}" y2="{v1:.1f}" stroke="#ddd"/>')
    top = [at(0, 0, 1), at(0, 1, 1), at(1, 1, 1), at(1, 0, 1), at(0, 0, 1)]
    p.append(
        '<polyline points="'
        + " ".join(f"{u:.1f},{v:.1f}" for u, v in top)
        + '" fill="none" stroke="#ddd"/>'
    )
    arrows = ("right", "back", "up")
    for k, (end, label, (lo, hi)) in enumerate(
        zip(((1, 0, 0), (0, 1, 0), (0, 0, 1)), labels, ends, strict=True)
    ):
        u0, v0 = at(0, 0, 0)
        u1, v1 = at(*end)
        p.append(f'<line x1="{u0:.1f}" y1="{v0:.1f}" x2="{u1:.1f}" y2="{v1:.1f}" stroke="black"/>')
        dx, dy, anchor = ((-2, 14, "end"), (6, 0, "start"), (0, -6, "middle"))[k]
        name = escape(label.split()[0])
        p.append(
            f'<text x="{u1 + dx:.1f}" y="{v1 + dy:.1f}" text-anchor="{anchor}" '
            f'font-weight="bold">{name}</text>'
        )
        p.append(
            f'<text x="{x0 - 40}" y="{y0 + 12 + 15 * k}">{arrows[k]}: '
            f'<tspan font-weight="bold">{escape(label)}</tspan> {escape(lo)} \u2192 '
            f"{escape(hi)}</text>"
        )
    p.append(f'<text x="{ox:.1f}" y="{oy + 14:.1f}" text-anchor="middle">best</text>')
    for g, gz in zip(groups, zs, strict=True):
        tips = list(g.tips) or [""] * len(g.xs)
        for a, b, c, tip in zip(g.xs, g.ys, gz, tips, strict=True):
            if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
                continue
            u, v = at(a, b, c)
            if g.kind in drop:
                fu, fv = at(a, b, 0)
                p.append(
                    f'<line x1="{u:.1f}" y1="{v:.1f}" x2="{fu:.1f}" y2="{fv:.1f}" '
                    f'stroke="{g.color}" stroke-opacity="0.5"/>'
                )
            p.append(marker(g, u, v, g.radius, f"pt3 {g.kind}", tip))
    canvas.legend([g for g in groups if g.xs or g.kind == "front"])
    return canvas.svg()
