"""The HTML of ``report.html`` (see `mixnas.report`).

The page is one file with inline SVG and CSS, no script and nothing fetched. Its charts scale to
the page: each ``<svg>`` has a viewBox and is drawn at the width of its column (``svg.chart``),
pairs of objectives and importances sit in a grid that uses a wide screen (two or more columns)
and falls back to one column on a narrow one; the wide charts (parallel coordinates) scroll
sideways rather than shrink past reading on a phone.

The report reads the run as columns (`RunData`), so it stays quick at 100,000 trials: the charts
draw every front point but at most ``max_points`` of the other trials (a seeded random sample,
the same in every run of the report, and said in words under the figure); the hypervolume curve
is computed at up to ``curve_points`` evenly spaced trial counts; the decisions' importances rest
on at most `mixnas.report.decisions.IMPORTANCE_TRIALS` trials; the tables list the front and
at most ``MAX_FAILURES`` failed trials. ``trials.csv`` always has every trial. The figures are
built in `mixnas.report.figures`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np

from mixnas.records import FAILED, OK, PRUNED
from mixnas.report.data import RunData, describe_spec
from mixnas.report.figures import (
    hypervolume_section,
    importance_section,
    kinds_of,
    parallel_section,
    pareto_section,
)
from mixnas.report.recipe_section import recipe_header
from mixnas.report.shipped import has_shipped, shipped_section

_CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em 2vw; max-width: 2400px;
  color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
.charts { display: grid; gap: 16px;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 560px), 1fr)); }
figure { margin: 0; } figcaption, p.drawn { color: #555; font-size: 0.9em; }
svg.chart { display: block; width: 100%; height: auto; }
figure.wide { overflow-x: auto; margin-bottom: 12px; }
figure.wide svg.chart { min-width: 900px; }
@media (max-width: 700px) { svg.chart text { font-size: 17px; } }
.scroll { overflow-x: auto; }
.counts span { margin-right: 1.5em; display: inline-block; }
pre { background: #f7f7f7; padding: 1em; overflow: auto; }
code { background: #f4f4f4; padding: 0 3px; overflow-wrap: anywhere; }
"""

#: Trials off the front drawn per chart (scatter and parallel coordinates) before sampling.
MAX_POINTS = 2000
#: Trial counts at which the hypervolume (or the best-so-far curve) is computed and drawn.
CURVE_POINTS = 500
#: Failed trials listed in the report's table (trials.csv has them all).
MAX_FAILURES = 200


def render_report(
    run: RunData,
    *,
    max_points: int = MAX_POINTS,
    curve_points: int = CURVE_POINTS,
    hv_reference: Sequence[float] | None = None,
) -> str:
    """The report's HTML; ``max_points``: trials off the front drawn per chart (a seeded sample
    above it), ``curve_points``: trial counts at which the curves are computed,
    ``hv_reference``: the hypervolume's reference point in objective order and metric units
    (default: derived from this run, and said so)."""
    title = f"mixnas run {run.config.name}"
    body = [
        f"<h1>{escape(title)}</h1>",
        recipe_header(run.run_dir),
        _summary(run),
        "<h2>Pareto front</h2>",
        pareto_section(run, max_points, curve_points),
        "<h2>Hypervolume over trials</h2>",
        hypervolume_section(run, curve_points, hv_reference),
        "<h2>Parallel coordinates</h2>",
        parallel_section(run, max_points),
        "<h2>Importance of the decisions</h2>",
        importance_section(run),
        "<h2>Front members</h2>",
        _front_table(run),
        *(
            ["<h2>Shipped models</h2>", shipped_section(run.run_dir)]
            if has_shipped(run.run_dir)
            else []
        ),
        "<h2>Failed trials</h2>",
        _failures(run),
        "<h2>Manifest</h2>",
        _manifest(run.manifest),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _summary(run: RunData) -> str:
    counts = run.counts()
    objectives = ", ".join(f"{o.direction} {o.metric}" for o in run.objectives)
    space = run.config.space if isinstance(run.config.space, str) else "inline / derived"
    infeasible = int((kinds_of(run) == "infeasible").sum())
    items = [
        f"<span><b>{len(run.trials)}</b> trials</span>",
        f"<span><b>{counts.get(OK, 0)}</b> ok</span>",
        f"<span><b>{infeasible}</b> infeasible (ok, breaking a constraint)</span>",
        f"<span><b>{counts.get(PRUNED, 0)}</b> pruned by screening</span>",
        f"<span><b>{counts.get(FAILED, 0)}</b> failed</span>",
        f"<span><b>{int(run.on_front.sum())}</b> on the front</span>",
    ]
    if run.running:
        items.append(f"<span><b>{run.running}</b> in flight</span>")
    constraints = "; ".join(
        f"{m} " + ", ".join(f"{k} {v:g}" for k, v in sorted(b.items()))
        for m, b in run.config.constraints.items()
    )
    return (
        f"<p class='counts'>{''.join(items)}</p>"
        f"<p>Objectives: {escape(objectives)}. "
        f"Constraints: {escape(constraints or 'none')}. Strategy: {escape(run.config.strategy)}. "
        f"Space: {escape(str(space))}. Seed: {run.config.seed}.</p>"
    )


def _front_table(run: RunData) -> str:
    members = run.front()
    if not members:
        return "<p>The front is empty.</p>"
    names = [o.metric for o in run.objectives]
    extra = [m for m in ("params", "macs", "bitops") if m not in names]
    head = ["trial", "spec id", *names, *extra, "mixers per stage", "depths", "widths", "bits"]
    rows = []
    for r in sorted(members, key=lambda r: r.metrics[names[0]]):
        d = describe_spec(dict(r.spec))
        cells = [str(r.trial_id), escape(r.spec_id)]
        cells += [f"{r.metrics.get(m, math.nan):.4g}" for m in [*names, *extra]]
        text = [d["mixers"], d["depths"], d["widths"], d["bits"]]
        rows.append(
            "<tr>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "".join(f"<td class='text'>{escape(t)}</td>" for t in text)
            + "</tr>"
        )
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<div class='scroll'><table><tr>{header}</tr>{''.join(rows)}</table></div>"


def _failures(run: RunData) -> str:
    positions = np.flatnonzero(run.trials.status == FAILED)
    if not positions.size:
        return "<p>None.</p>"
    failed = run.records_of(positions[:MAX_FAILURES])
    rows = "".join(
        f"<tr><td>{r.trial_id}</td><td class='text'>{escape(describe_spec(dict(r.spec))['mixers'])}"
        f"</td><td class='text'>{escape(r.error)}</td></tr>"
        for r in failed
    )
    note = ""
    if positions.size > len(failed):
        note = (
            f"<p class='drawn'>The first {len(failed):,} of {positions.size:,} failed trials; "
            "trials.csv lists every trial.</p>"
        )
    return (
        "<div class='scroll'><table><tr><th>trial</th><th>mixers</th><th>error</th></tr>"
        f"{rows}</table></div>{note}"
    )


def _manifest(manifest: dict[str, Any]) -> str:
    """What produced the run, as a table of readable rows; the raw JSON in a closed
    ``<details>`` below it."""
    raw = escape(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    details = f"<details><summary>manifest.json as written</summary><pre>{raw}</pre></details>"
    if not manifest:
        return "<p>No manifest.json in the run folder.</p>" + details
    rows = [(label, text) for label, text in _manifest_rows(manifest) if text]
    cells = "".join(
        f"<tr><th class='text'>{escape(label)}</th><td class='text'>{escape(text)}</td></tr>"
        for label, text in rows
    )
    return f"<div class='scroll'><table class='manifest'>{cells}</table></div>{details}"


def _pairs(value: Any, keys: Sequence[str] | None = None) -> str:
    """``k v, k v`` of a mapping (the keys given, in order, else all sorted)."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    chosen = [k for k in keys if k in value] if keys else sorted(value)
    return ", ".join(f"{k} {_short(value[k])}" for k in chosen if value[k] not in (None, ""))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
        return text if len(text) <= 120 else text[:119] + "\u2026"
    return str(value)


def _manifest_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    config = m.get("config") if isinstance(m.get("config"), dict) else {}
    rows = [
        ("created", _short(m.get("created", ""))),
        (
            "command",
            " ".join(map(str, m["command"]))
            if isinstance(m.get("command"), list)
            else _short(m.get("command", "")),
        ),
        ("backend", _short(m.get("backend", ""))),
        ("space hash", _short(m.get("space_hash", ""))),
    ]
    if config:
        space = config.get("space")
        rows.append(("space", space if isinstance(space, str) else "inline / derived"))
        strategy = config.get("strategy")
        if isinstance(strategy, dict):
            rows.append(("strategy", f"{strategy.get('name')} {_pairs(strategy.get('options'))}"))
        evaluators = config.get("evaluators")
        if isinstance(evaluators, list):
            rows.append(
                (
                    "evaluators",
                    "; ".join(
                        f"{e.get('name')}"
                        + (f" ({_pairs(e.get('options'))})" if e.get("options") else "")
                        for e in evaluators
                        if isinstance(e, dict)
                    ),
                )
            )
        rows.append(("budget", _pairs(config.get("budget"))))
        rows.append(("seed", _short(config.get("seed", ""))))
    rows.append(("versions", _pairs(m.get("versions"))))
    rows.append(("host", _pairs(m.get("host"), ["hostname", "processor", "cpu_count", "platform"])))
    rows.append(("device", _pairs(m.get("device"))))
    known = {"created", "command", "backend", "space_hash", "config", "versions", "host", "device"}
    rows += [(k, _short(v)) for k, v in sorted(m.items()) if k not in known]
    return rows
