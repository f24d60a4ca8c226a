"""A minimal SVG line chart (no plotting library is a dependency of mixnas)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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
    """An SVG document with one polyline per series, axes, ticks and a legend."""
    left, right, top, bottom = 60, 170, 30, 45
    xs = [x for xv, _ in series.values() for x in xv]
    ys = [y for _, yv in series.values() for y in yv if not log_y or y > 0]
    x0, x1 = min(xs), max(xs)
    fy = (lambda v: math.log10(max(v, 1e-12))) if log_y else (lambda v: v)
    y0, y1 = fy(min(ys)), fy(max(ys))
    if y1 == y0:
        y1 = y0 + 1

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * (width - left - right)

    def py(y: float) -> float:
        return top + (1 - (fy(y) - y0) / (y1 - y0)) * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" '
        f'y2="{height - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 8}" '
        f'text-anchor="middle">{xlabel}</text>',
        f'<text x="14" y="{(top + height - bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(top + height - bottom) / 2})">{ylabel}</text>',
    ]
    for i in range(5):
        xv = x0 + (x1 - x0) * i / 4
        out.append(
            f'<text x="{px(xv):.1f}" y="{height - bottom + 15}" text-anchor="middle">{xv:g}</text>'
        )
        yv = 10 ** (y0 + (y1 - y0) * i / 4) if log_y else y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{left - 5}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
        out.append(
            f'<line x1="{left}" y1="{py(yv):.1f}" x2="{width - right}" y2="{py(yv):.1f}" '
            'stroke="#eee"/>'
        )
    for k, (name, (xv, yv)) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        points = " ".join(
            f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xv, yv, strict=True) if not log_y or y > 0
        )
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{points}"/>')
        ly = top + 14 * k + 6
        out.append(
            f'<line x1="{width - right + 10}" y1="{ly}" x2="{width - right + 28}" '
            f'y2="{ly}" stroke="{color}" stroke-width="2"/>'
        )
        out.append(f'<text x="{width - right + 32}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)
