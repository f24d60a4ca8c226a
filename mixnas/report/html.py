"""The HTML of ``report.html`` (see `mixnas.report`)."""

from __future__ import annotations

import itertools
import json
import math
from html import escape
from typing import Any

from mixnas.front import hypervolume_curve
from mixnas.records import FAILED, OK
from mixnas.report.data import RunData, describe_spec
from mixnas.report.svg import (
    PALETTE,
    PointGroup,
    line_chart,
    parallel_coordinates,
    scatter_chart,
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1180px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
th { background: #f4f4f4; } td.text { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.counts span { margin-right: 1.5em; } pre { background: #f7f7f7; padding: 1em; overflow: auto; }
"""


def render_report(run: RunData) -> str:
    title = f"mixnas run {run.config.name}"
    body = [
        f"<h1>{escape(title)}</h1>",
        _summary(run),
        "<h2>Pareto front</h2>",
        _pareto_charts(run),
        "<h2>Hypervolume over trials</h2>",
        _hypervolume_chart(run),
        "<h2>Parallel coordinates</h2>",
        _parallel(run),
        "<h2>Front members</h2>",
        _front_table(run),
        "<h2>Failed trials</h2>",
        _failures(run),
        "<h2>Manifest</h2>",
        f"<pre>{escape(json.dumps(run.manifest, indent=2, sort_keys=True, default=str))}</pre>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _summary(run: RunData) -> str:
    counts = run.counts()
    objectives = ", ".join(f"{o.direction} {o.metric}" for o in run.objectives)
    space = run.config.space if isinstance(run.config.space, str) else "inline / derived"
    items = [
        f"<span><b>{len(run.records)}</b> trials</span>",
        f"<span><b>{counts.get(OK, 0)}</b> ok</span>",
        f"<span><b>{counts.get('pruned', 0)}</b> pruned by screening</span>",
        f"<span><b>{counts.get(FAILED, 0)}</b> failed</span>",
        f"<span><b>{len(run.front())}</b> on the front</span>",
    ]
    return (
        f"<p class='counts'>{''.join(items)}</p>"
        f"<p>Objectives: {escape(objectives)}. Strategy: {escape(run.config.strategy)}. "
        f"Space: {escape(str(space))}. Seed: {run.config.seed}.</p>"
    )


def _tip(record: Any, metrics: list[str]) -> str:
    shown = ", ".join(f"{m}={record.metrics.get(m, math.nan):.4g}" for m in metrics)
    return f"trial {record.trial_id} ({record.spec_id}): {shown}"


def _pareto_charts(run: RunData) -> str:
    objectives = list(run.objectives)
    if len(objectives) < 2:
        return _single_objective(run)
    front_ids = {r.trial_id for r in run.front()}
    names = [o.metric for o in objectives]
    ok = [r for r in run.records if r.status == OK and all(m in r.metrics for m in names)]
    charts = []
    for a, b in itertools.combinations(objectives, 2):
        rest = [r for r in ok if r.trial_id not in front_ids]
        on = [r for r in ok if r.trial_id in front_ids]
        log_x, log_y = _wide(ok, a.metric), _wide(ok, b.metric)
        groups = [
            PointGroup(
                "other trials",
                "#9aa7b4",
                [r.metrics[a.metric] for r in rest],
                [r.metrics[b.metric] for r in rest],
                [_tip(r, names) for r in rest],
            ),
            PointGroup(
                "Pareto front",
                PALETTE[1],
                [r.metrics[a.metric] for r in on],
                [r.metrics[b.metric] for r in on],
                [_tip(r, names) for r in on],
                radius=4.5,
            ),
        ]
        stair = _pair_front(on, a, b) if len(objectives) == 2 else None
        charts.append(
            scatter_chart(
                groups,
                title=f"{b.metric} vs {a.metric}",
                xlabel=f"{a.metric} ({a.direction})",
                ylabel=f"{b.metric} ({b.direction})",
                staircase=stair,
                log_x=log_x,
                log_y=log_y,
            )
        )
    return f"<div class='charts'>{''.join(charts)}</div>"


def _wide(records: list[Any], metric: str) -> bool:
    """Log scale for positive metrics spanning more than two decades (params, MACs)."""
    values = [r.metrics[metric] for r in records if r.metrics.get(metric, 0) > 0]
    return len(values) > 1 and max(values) / min(values) > 100


def _pair_front(on: list[Any], a: Any, b: Any) -> tuple[list[float], list[float]]:
    pts = sorted((r.metrics[a.metric], r.metrics[b.metric]) for r in on)
    return [p[0] for p in pts], [p[1] for p in pts]


def _single_objective(run: RunData) -> str:
    o = run.objectives[0]
    ok = [r for r in run.records if r.status == OK and o.metric in r.metrics]
    if not ok:
        return "<p>No finished trial reports the objective yet.</p>"
    xs = [float(r.trial_id) for r in ok]
    ys = [r.metrics[o.metric] for r in ok]
    better = max if o.direction == "maximize" else min
    running = [better(ys[: i + 1]) for i in range(len(ys))]
    return line_chart(
        {o.metric: (xs, ys), f"best {o.metric}": (xs, running)},
        title=f"{o.metric} per trial",
        xlabel="trial",
        ylabel=o.metric,
    )


def _hypervolume_chart(run: RunData) -> str:
    if len(run.objectives) < 2:
        return "<p>One objective: see the best-so-far curve above.</p>"
    trials, values, ref = hypervolume_curve(run.records, run.objectives, run.config.constraints)
    if not trials:
        return "<p>No eligible trial yet.</p>"
    note = (
        "<p>Objectives scaled to [0, 1] over this run's eligible trials (losses: maximised "
        f"objectives negated); reference point ({', '.join(f'{v:g}' for v in ref)}).</p>"
    )
    chart = line_chart(
        {"hypervolume": ([float(t) for t in trials], values)},
        title="Hypervolume of the front after each trial",
        xlabel="trial",
        ylabel="hypervolume (normalised)",
    )
    return note + chart


def _parallel(run: RunData) -> str:
    names = [o.metric for o in run.objectives]
    extra = [m for m in ("params", "macs", "bitops") if m not in names]
    axes = names + extra
    ok = [r for r in run.records if r.status == OK and all(m in r.metrics for m in axes)]
    if not ok:
        return "<p>No finished trial yet.</p>"
    front_ids = {r.trial_id for r in run.front()}
    ordered = sorted(ok, key=lambda r: r.trial_id in front_ids)  # front drawn last, on top
    return parallel_coordinates(
        axes,
        [[r.metrics[m] for m in axes] for r in ordered],
        [PALETTE[1] if r.trial_id in front_ids else "#9aa7b4" for r in ordered],
        title="Finished trials (front in red)",
        tips=[_tip(r, axes) for r in ordered],
        legend=[("front", PALETTE[1]), ("other", "#9aa7b4")],
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
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _failures(run: RunData) -> str:
    failed = [r for r in run.records if r.status == FAILED]
    if not failed:
        return "<p>None.</p>"
    rows = "".join(
        f"<tr><td>{r.trial_id}</td><td class='text'>{escape(describe_spec(dict(r.spec))['mixers'])}"
        f"</td><td class='text'>{escape(r.error)}</td></tr>"
        for r in failed
    )
    return f"<table><tr><th>trial</th><th>mixers</th><th>error</th></tr>{rows}</table>"
