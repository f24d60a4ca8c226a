"""The HTML of ``report.html`` (see `mixnas.report`).

The report reads the run as columns (`RunData`), so it stays quick at 100,000 trials: the charts
draw every front point but at most ``max_points`` of the other trials (a seeded random sample,
the same in every run of the report, and said in words under the figure); the hypervolume curve
is computed at up to ``curve_points`` evenly spaced trial counts; the tables list the front and
at most ``MAX_FAILURES`` failed trials. ``trials.csv`` always has every trial.
"""

from __future__ import annotations

import itertools
import json
import math
from html import escape

import numpy as np

from mixnas.front import hypervolume_trace, sample_positions
from mixnas.records import FAILED, OK, PRUNED
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
p.drawn { color: #555; font-size: 0.9em; }
"""

#: Trials off the front drawn per chart (scatter and parallel coordinates) before sampling.
MAX_POINTS = 2000
#: Trial counts at which the hypervolume (or the best-so-far curve) is computed and drawn.
CURVE_POINTS = 500
#: Failed trials listed in the report's table (trials.csv has them all).
MAX_FAILURES = 200
_OTHER = "#9aa7b4"
_SEED = 0  # of the sample of points drawn: the same report for the same records


def render_report(
    run: RunData, *, max_points: int = MAX_POINTS, curve_points: int = CURVE_POINTS
) -> str:
    """The report's HTML; ``max_points``: trials off the front drawn per chart (a seeded sample
    above it), ``curve_points``: trial counts at which the curves are computed."""
    title = f"mixnas run {run.config.name}"
    body = [
        f"<h1>{escape(title)}</h1>",
        _summary(run),
        "<h2>Pareto front</h2>",
        _pareto_charts(run, max_points, curve_points),
        "<h2>Hypervolume over trials</h2>",
        _hypervolume_chart(run, curve_points),
        "<h2>Parallel coordinates</h2>",
        _parallel(run, max_points),
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
        f"<span><b>{len(run.trials)}</b> trials</span>",
        f"<span><b>{counts.get(OK, 0)}</b> ok</span>",
        f"<span><b>{counts.get(PRUNED, 0)}</b> pruned by screening</span>",
        f"<span><b>{counts.get(FAILED, 0)}</b> failed</span>",
        f"<span><b>{int(run.on_front.sum())}</b> on the front</span>",
    ]
    if run.running:
        items.append(f"<span><b>{run.running}</b> in flight</span>")
    return (
        f"<p class='counts'>{''.join(items)}</p>"
        f"<p>Objectives: {escape(objectives)}. Strategy: {escape(run.config.strategy)}. "
        f"Space: {escape(str(space))}. Seed: {run.config.seed}.</p>"
    )


def _tip(run: RunData, i: int, metrics: list[str]) -> str:
    t = run.trials
    shown = ", ".join(f"{m}={t.metric(m)[i]:.4g}" for m in metrics)
    return f"trial {t.trial_id[i]} ({t.spec_id[i]}): {shown}"


def _reporting(run: RunData, metrics: list[str]) -> np.ndarray:
    """Positions of the ``ok`` trials that report every one of ``metrics``."""
    t = run.trials
    ok = t.status == OK
    for m in metrics:
        ok &= np.isfinite(t.metric(m))
    return np.flatnonzero(ok)


def _drawn(run: RunData, rows: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(front rows, other rows to draw): every front row, and at most ``max_points`` others,
    a seeded random sample kept in trial order."""
    on = rows[run.on_front[rows]]
    rest = rows[~run.on_front[rows]]
    if rest.size > max_points:
        rng = np.random.default_rng(_SEED)
        rest = np.sort(rng.choice(rest, size=max_points, replace=False))
    return on, rest


def _drawn_note(on: np.ndarray, rest: np.ndarray, total: int, what: str) -> str:
    """The sentence under a chart that says how many of the points it draws."""
    drawn = on.size + rest.size
    if drawn == total:
        return f"<p class='drawn'>All {total:,} {what} are drawn.</p>"
    return (
        f"<p class='drawn'>{drawn:,} of {total:,} {what} drawn: all {on.size:,} on the Pareto "
        f"front and a random sample (seed {_SEED}) of {rest.size:,} of the "
        f"{total - on.size:,} others; trials.csv lists every trial.</p>"
    )


def _pareto_charts(run: RunData, max_points: int, curve_points: int) -> str:
    objectives = list(run.objectives)
    if len(objectives) < 2:
        return _single_objective(run, curve_points)
    names = [o.metric for o in objectives]
    ok = _reporting(run, names)
    on, rest = _drawn(run, ok, max_points)
    t = run.trials
    charts = []
    for a, b in itertools.combinations(objectives, 2):
        xa, yb = t.metric(a.metric), t.metric(b.metric)
        log_x, log_y = _wide(xa[ok]), _wide(yb[ok])
        groups = [
            PointGroup(
                "other trials",
                _OTHER,
                xa[rest].tolist(),
                yb[rest].tolist(),
                [_tip(run, i, names) for i in rest],
            ),
            PointGroup(
                "Pareto front",
                PALETTE[1],
                xa[on].tolist(),
                yb[on].tolist(),
                [_tip(run, i, names) for i in on],
                radius=4.5,
            ),
        ]
        stair = _pair_front(xa[on], yb[on]) if len(objectives) == 2 else None
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
    note = _drawn_note(on, rest, ok.size, "trials that report the objectives")
    return f"<div class='charts'>{''.join(charts)}</div>{note}"


def _wide(values: np.ndarray) -> bool:
    """Log scale for positive metrics spanning more than two decades (params, MACs)."""
    positive = values[values > 0]
    return positive.size > 1 and float(positive.max() / positive.min()) > 100


def _pair_front(xs: np.ndarray, ys: np.ndarray) -> tuple[list[float], list[float]]:
    order = np.lexsort((ys, xs))
    return xs[order].tolist(), ys[order].tolist()


def _single_objective(run: RunData, curve_points: int) -> str:
    o = run.objectives[0]
    ok = _reporting(run, [o.metric])
    if not ok.size:
        return "<p>No finished trial reports the objective yet.</p>"
    xs = run.trials.trial_id[ok].astype(float)
    ys = run.trials.metric(o.metric)[ok]
    running = (np.maximum if o.direction == "maximize" else np.minimum).accumulate(ys)
    shown = sample_positions(ok.size, curve_points)
    note = ""
    if shown.size < ok.size:
        note = (
            f"<p class='drawn'>{shown.size:,} of {ok.size:,} trials drawn (evenly spaced); "
            "trials.csv lists every trial.</p>"
        )
    return (
        line_chart(
            {
                o.metric: (xs[shown].tolist(), ys[shown].tolist()),
                f"best {o.metric}": (xs[shown].tolist(), running[shown].tolist()),
            },
            title=f"{o.metric} per trial",
            xlabel="trial",
            ylabel=o.metric,
        )
        + note
    )


def _hypervolume_chart(run: RunData, curve_points: int) -> str:
    if len(run.objectives) < 2:
        return "<p>One objective: see the best-so-far curve above.</p>"
    try:
        positions, values, ref = hypervolume_trace(
            run.losses, run.eligible, max_points=curve_points
        )
    except ValueError as err:  # four or more objectives and too large a front for exact volume
        return f"<p>No hypervolume curve: {escape(str(err))}</p>"
    if not positions.size:
        return "<p>No eligible trial yet.</p>"
    n = len(run.trials)
    when = (
        "after every trial"
        if positions.size == n
        else f"after {positions.size:,} evenly spaced trials of {n:,}"
    )
    note = (
        "<p>Objectives scaled to [0, 1] over this run's eligible trials (losses: maximised "
        f"objectives negated); reference point ({', '.join(f'{v:g}' for v in ref)}). "
        f"Computed {when}.</p>"
    )
    chart = line_chart(
        {"hypervolume": (run.trials.trial_id[positions].astype(float).tolist(), values)},
        title="Hypervolume of the front after each trial",
        xlabel="trial",
        ylabel="hypervolume (normalised)",
    )
    return note + chart


def _parallel(run: RunData, max_points: int) -> str:
    names = [o.metric for o in run.objectives]
    extra = [m for m in ("params", "macs", "bitops") if m not in names and m in run.trials.metrics]
    axes = names + extra
    ok = _reporting(run, axes)
    if not ok.size:
        return "<p>No finished trial yet.</p>"
    on, rest = _drawn(run, ok, max_points)
    ordered = np.concatenate([rest, on])  # front drawn last, on top
    columns = [run.trials.metric(m)[ordered] for m in axes]
    return parallel_coordinates(
        axes,
        np.column_stack(columns).tolist(),
        [_OTHER] * rest.size + [PALETTE[1]] * on.size,
        title="Finished trials (front in red)",
        tips=[_tip(run, i, axes) for i in ordered],
        legend=[("front", PALETTE[1]), ("other", _OTHER)],
    ) + _drawn_note(on, rest, ok.size, "trials that report these metrics")


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
    return f"<table><tr><th>trial</th><th>mixers</th><th>error</th></tr>{rows}</table>{note}"
