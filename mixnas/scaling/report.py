"""The family report: member specs, a markdown table and an HTML page with an SVG chart.

`write_family(out_dir, rows, title)` takes the JSON objects of `family.describe` (one per member)
and writes ``member-<k>-<id>.json`` (readable by ``mixnas build`` and ``mixnas scale``: the spec
sits under ``"spec"``), ``family.md`` and ``report.html``. Writes are atomic (temp + rename) so a
killed command never leaves half a file.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixnas.report.svg import line_chart


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:.3g}"
    return str(v)


def table_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Column names and cells of the family table."""
    extra_lat = sorted({k for r in rows for k in r.get("predicted", {})})
    proxies = sorted({k for r in rows for k in r.get("proxies", {})})
    metric = rows[0]["budget"]["metric"] if rows else "macs"
    head = ["#", "id", f"budget ({metric})", metric, "params", "macs", "depths", "widths", "res"]
    head += extra_lat + proxies
    cells = []
    for k, r in enumerate(rows):
        d = r["dims"]
        line = [
            str(k),
            r["id"],
            _fmt(r["budget"]["value"]),
            _fmt(r["cost"][metric]),
            _fmt(r["cost"]["params"]),
            _fmt(r["cost"]["macs"]),
            "-".join(map(str, d["depths"])),
            "-".join(map(str, d["widths"])),
            str(d["resolution"] or "-"),
        ]
        line += [_fmt(r.get("predicted", {}).get(n, "")) for n in extra_lat]
        line += [_fmt(r.get("proxies", {}).get(n, "")) for n in proxies]
        cells.append(line)
    return head, cells


def markdown_table(head: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def write_family(out_dir: str | Path, rows: Sequence[Mapping[str, Any]], title: str) -> list[Path]:
    """Writes the member specs, ``family.md`` and ``report.html``; returns the member paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, r in enumerate(rows):
        p = out / f"member-{k}-{r['id']}.json"
        _atomic_write(p, json.dumps(r, indent=2, sort_keys=True) + "\n")
        paths.append(p)
    head, cells = table_rows(rows)
    md = f"# {title}\n\n" + markdown_table(head, cells)
    _atomic_write(out / "family.md", md)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for name in sorted({k for r in rows for k in r.get("proxies", {})}):
        series[name] = ([r["cost"]["macs"] for r in rows], [r["proxies"][name] for r in rows])
    chart = ""
    if series and len(rows) > 1:
        chart = line_chart(series, title="proxy score vs MACs", xlabel="MACs", ylabel="score")
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style>"
        f"<h1>{html.escape(title)}</h1><table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + f"</tr>{table}</table>{chart}"
    )
    _atomic_write(out / "report.html", page)
    return paths
